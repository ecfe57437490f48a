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

/// A [`Command`] made of a borrowed operation: it encodes to the same bytes
/// (postcard writes a reference as what it refers to), so a batch is
/// encoded without moving its operations out of the caller's hands.
#[derive(Serialize)]
struct CommandRef<'a> {
    ts_ms: u64,
    op: &'a Op,
}

/// A command's encoded length in bytes.
fn encoded_len<T: Serialize>(command: &T) -> usize {
    // Sizing owned in-memory data cannot fail.
    postcard::serialize_with_flavor::<_, postcard::ser_flavors::Size, usize>(
        command,
        postcard::ser_flavors::Size::default(),
    )
    .expect("postcard sizes in-memory commands")
}

/// A command's payload in a buffer of exactly its size. The Raft log holds
/// every payload until a snapshot compacts it, and a buffer grown by
/// doubling (`to_allocvec`) held up to twice the bytes: 100,000 RPUSHes of
/// ten elements kept 34 MiB of log where the lists took 26.
fn encode_exact<T: Serialize>(command: &T) -> Vec<u8> {
    crate::encode::append(command, Vec::with_capacity(encoded_len(command)))
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
    /// `SET key value` in database 0 with no option (clears any TTL): the
    /// server proposes a plain SET in db 0 in this form rather than as
    /// `Exec`, so apply decodes it without copying the value
    /// ([`Command::decode_shared`]). Applies exactly as `Exec` of the same
    /// arguments.
    Set {
        /// Key.
        key: Bytes,
        /// Value.
        value: Bytes,
    },
    /// `DEL key [key ...]` in database 0: the server's form of a DEL in db 0
    /// (no command name to carry). Applies exactly as `Exec` of `DEL`.
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
    /// A change to the ACL users (`ACL SETUSER/DELUSER/LOAD`, `CONFIG SET
    /// requirepass`).
    Acl(crate::acl::AclOp),
    /// One connection's pipelined blocking commands (BLPOP, BLMOVE ...),
    /// each with its database: their first attempts, applied in order until
    /// one finds nothing to pop. That one and those after it are not
    /// applied: the server then blocks that one and runs the rest after it,
    /// as Redis would. The output is an array of the outputs of the commands
    /// applied, the last one being the empty attempt if there was one.
    Pops {
        /// The commands as the client sent them.
        commands: Vec<(u8, Vec<Bytes>)>,
    },
    /// `op` run on behalf of `user`: an entry that runs a script (EVAL,
    /// EVALSHA, or a MULTI holding one), whose `redis.call`s are checked
    /// against that user's permissions at apply (users are replicated, so
    /// the check is the same everywhere).
    AsUser {
        /// The calling connection's user name.
        user: String,
        /// The operation (never `AsUser`, `Expire` or `Evict`).
        op: Box<Op>,
    },
    /// A Pub/Sub change or message (`kv/pubsub.rs`): subscriptions are
    /// replicated so every node counts PUBLISH's receivers alike.
    PubSub(crate::kv::pubsub::PubSubOp),
    /// `op` written by a client in `CLIENT TRACKING ... NOLOOP` mode: the
    /// writer's identity lets its own node skip that client's invalidations
    /// whichever node the entry came through (`node/tracking.rs`). Apply
    /// runs `op` as it is; every other node ignores `client`.
    /// Last in the enum: variant indexes are the log format.
    Client {
        /// The writing connection.
        client: crate::kv::pubsub::Subscriber,
        /// The operation (never `Client`, `Expire` or `Evict`).
        op: Box<Op>,
    },
}

impl Op {
    /// The local client an entry was written by (`Op::Client`), if it is
    /// a client of node `node` in incarnation `incarnation`.
    pub fn writer(&self, node: u64, incarnation: u64) -> Option<u64> {
        match self {
            Op::Client { client, .. }
                if client.node == node && client.incarnation == incarnation =>
            {
                Some(client.client)
            }
            _ => None,
        }
    }
}

/// Commands whose entries carry the calling user ([`Op::AsUser`]).
pub fn runs_script(args: &[Bytes]) -> bool {
    args.first().is_some_and(|name| {
        [
            &b"eval"[..],
            b"evalsha",
            b"eval_ro",
            b"evalsha_ro",
            b"fcall",
            b"fcall_ro",
        ]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n))
    })
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
    /// Keyed arrays: an array of `[key, value]` arrays in RESP2, a map in
    /// RESP3 (XREAD and XREADGROUP, as Redis 7).
    KeyedArrays(Vec<(Output, Output)>),
    /// A set reply: an array in RESP2, a set (`~`) in RESP3 (SMEMBERS,
    /// SINTER, SPOP with a count ..., as Redis 7).
    Set(Vec<Output>),
    /// A double, already printed as Redis prints it (`%.17g`, `inf`): a
    /// bulk string in RESP2, a `,` double in RESP3 (sorted-set scores).
    Double(String),
    /// A boolean: `#t`/`#f` in RESP3, `:1`/`:0` in RESP2 (a RESP3 script's
    /// `true`/`false`).
    Bool(bool),
    /// A big number: `(` in RESP3, a bulk string in RESP2.
    BigNumber(String),
    /// A verbatim string with its 3-letter format: `=` in RESP3, a bulk
    /// string in RESP2.
    Verbatim {
        /// `txt`, `mkd` ...
        format: String,
        /// The text.
        text: Bytes,
    },
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
    /// `args` (the command name first) run in database `db` at `ts_ms`, as
    /// the server proposes a command it has no compact form for.
    pub fn exec<A: AsRef<[u8]>>(ts_ms: u64, db: u8, args: &[A]) -> Command {
        Command {
            ts_ms,
            op: Op::Exec {
                db,
                args: args
                    .iter()
                    .map(|a| Bytes::copy_from_slice(a.as_ref()))
                    .collect(),
            },
        }
    }

    /// Encodes the command as a log payload.
    pub fn encode(&self) -> Bytes {
        Bytes::from(encode_exact(self))
    }

    /// The payloads of commands proposed together, in order: the short ones
    /// are slices of one buffer, a long one has its own.
    ///
    /// Why: the Raft log holds every payload until a snapshot compacts it,
    /// and a payload in a buffer of its own cost its allocation's rounding
    /// plus, at its first clone (the WAL batch, the append to a follower),
    /// the 24-byte sharing block `Bytes` allocates then: about 40 bytes of
    /// a 130-byte RPUSH. Commands proposed together are compacted together
    /// (the log drops a prefix), so one buffer frees as a whole.
    ///
    /// What keeps this from pinning memory: apply keeps a slice of a
    /// payload only for a plain SET's value of at least
    /// [`super::string::OWN_BUFFER_BELOW`] bytes (`shared_set`,
    /// `Str::stored`), and a payload that long is never in the shared
    /// buffer; everything else apply keeps is copied out.
    pub fn encode_batch(ts_ms: u64, ops: &[Op]) -> Vec<Bytes> {
        let commands = || ops.iter().map(|op| CommandRef { ts_ms, op });
        let sizes: Vec<usize> = commands().map(|c| encoded_len(&c)).collect();
        let shared_len: usize = sizes.iter().filter(|&&n| n < SHARED_BELOW).sum();
        let mut shared = Vec::with_capacity(shared_len);
        for (command, &size) in commands().zip(&sizes) {
            if size < SHARED_BELOW {
                shared = crate::encode::append(&command, shared);
            }
        }
        let shared = Bytes::from(shared);
        let mut at = 0;
        commands()
            .zip(sizes)
            .map(|(command, size)| {
                if size < SHARED_BELOW {
                    at += size;
                    shared.slice(at - size..at)
                } else {
                    Bytes::from(encode_exact(&command))
                }
            })
            .collect()
    }

    /// Decodes a log payload.
    ///
    /// # Errors
    /// [`DecodeError`] when the bytes are not a command.
    pub fn decode(bytes: &[u8]) -> Result<Command, DecodeError> {
        Ok(postcard::from_bytes(bytes)?)
    }

    /// [`Command::decode`] for a payload held in `Bytes`, as apply sees it:
    /// a plain `SET` (the hottest entry) comes out with its key and value
    /// sharing the payload's buffer instead of copied out of it, so a long
    /// value is kept as it arrived in the log entry. Other commands decode as
    /// [`Command::decode`] does; both give the same `Command`.
    ///
    /// # Errors
    /// [`DecodeError`] when the bytes are not a command.
    pub fn decode_shared(bytes: &Bytes) -> Result<Command, DecodeError> {
        match shared_set(bytes) {
            Some(command) => Ok(command),
            None => Command::decode(bytes),
        }
    }

    /// Whether `bytes` are a command, as [`Command::decode`] would decide,
    /// without building it when they have the shape of a plain `SET` or of
    /// an `Exec` (the commands a follower checks on every AppendEntries
    /// before it stores them, and decodes again when it applies them).
    ///
    /// # Errors
    /// [`DecodeError`] when the bytes are not a command.
    pub fn check(bytes: &[u8]) -> Result<(), DecodeError> {
        if plain_shape(bytes) {
            return Ok(());
        }
        Command::decode(bytes).map(drop)
    }
}

/// Whether `bytes` are exactly postcard's encoding of a `Command` whose op is
/// `Op::Set` (key and value as varint length and bytes) or `Op::Exec` (the
/// database as one byte, then a varint count of arguments, each a varint
/// length and bytes). `false` for anything else, valid or not.
fn plain_shape(bytes: &[u8]) -> bool {
    let mut at = 0;
    let walked = (|| -> Option<()> {
        varint(bytes, &mut at)?;
        match varint(bytes, &mut at)? {
            SET_VARIANT => {
                byte_string(bytes, &mut at)?;
                byte_string(bytes, &mut at).map(drop)
            }
            EXEC_VARIANT => {
                bytes.get(at)?;
                at += 1;
                // Each argument takes at least a byte, so a count past what
                // is left ends the walk at the end of the bytes.
                for _ in 0..varint(bytes, &mut at)? {
                    byte_string(bytes, &mut at)?;
                }
                Some(())
            }
            _ => None,
        }
    })();
    walked.is_some() && at == bytes.len()
}

/// Postcard's encoding of `Command { ts_ms, op: Op::Set { key, value } }`:
/// varint `ts_ms`, varint variant index 0, then key and value as varint
/// length and bytes, and nothing after. `None` for anything else (the
/// general decoder then decides, errors included).
fn shared_set(bytes: &Bytes) -> Option<Command> {
    let mut at = 0;
    let ts_ms = varint(bytes, &mut at)?;
    if varint(bytes, &mut at)? != SET_VARIANT {
        return None;
    }
    // Both are slices: what the map keeps, it copies where a slice would
    // keep the payload alive (`KeyMap::push_new`, `Str::stored`).
    let key = bytes.slice(byte_string(bytes, &mut at)?);
    let value = bytes.slice(byte_string(bytes, &mut at)?);
    (at == bytes.len()).then_some(Command {
        ts_ms,
        op: Op::Set { key, value },
    })
}

/// `Op::Set`'s variant index (its position in the enum).
const SET_VARIANT: u64 = 0;
/// `Op::Exec`'s variant index.
const EXEC_VARIANT: u64 = 2;

/// [`Command::encode_batch`] shares one buffer among payloads shorter than
/// this: none of them holds a value apply would keep as a slice.
const SHARED_BELOW: usize = super::string::OWN_BUFFER_BELOW;

/// The range of a postcard byte string (a varint length, then the bytes) at
/// `*at`, which moves past it; `None` when it runs past the end.
fn byte_string(bytes: &[u8], at: &mut usize) -> Option<std::ops::Range<usize>> {
    let len = usize::try_from(varint(bytes, at)?).ok()?;
    let end = at.checked_add(len).filter(|&end| end <= bytes.len())?;
    let range = *at..end;
    *at = end;
    Some(range)
}

/// A postcard (LEB128) varint of at most 64 bits at `*at`; `None` when
/// truncated or too long.
fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            // The tenth byte may carry only the top bit.
            return (shift < 63 || byte <= 1).then_some(value);
        }
    }
    None
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

    /// Commands proposed together: each payload is its command's own
    /// encoding; the short ones lie side by side in one buffer, a long one
    /// (which apply may keep a slice of) is in a buffer of its own; and
    /// nothing a short one holds stays a slice of the shared buffer once
    /// applied.
    #[test]
    fn a_batch_shares_one_buffer_among_its_short_payloads() {
        let exec = |args: &[&str]| Command::exec(5, 0, args);
        let long = "v".repeat(super::super::string::OWN_BUFFER_BELOW);
        let commands = vec![
            cmd_set("k1", "short"),
            exec(&["RPUSH", "list", "a", "b", "c"]),
            cmd_set("k2", &long),
            exec(&["SET", "k3", "x", "EX", "100"]),
            exec(&["HSET", "h", "field", "value"]),
        ];
        let ops: Vec<Op> = commands.iter().map(|c| c.op.clone()).collect();
        let payloads = Command::encode_batch(5, &ops);
        assert_eq!(payloads.len(), commands.len());
        for (payload, command) in payloads.iter().zip(&commands) {
            assert_eq!(payload[..], command.encode()[..]);
        }
        let short = [0, 1, 3, 4];
        for pair in short.windows(2) {
            let (a, b) = (&payloads[pair[0]], &payloads[pair[1]]);
            assert_eq!(a.as_ptr_range().end, b.as_ptr(), "{pair:?}: side by side");
        }
        let first = payloads[0].as_ptr();
        let shared = first..payloads[4].as_ptr_range().end;
        assert!(
            !shared.contains(&payloads[2].as_ptr()),
            "the long one apart"
        );
        // Applied as apply decodes them, nothing points into the buffer.
        let mut db = super::super::Db::new();
        for payload in &payloads {
            db.apply(&Command::decode_shared(payload).unwrap());
        }
        for (key, entry) in db.dbs[0].map.iter() {
            assert!(!shared.contains(&key.as_ptr()), "{key:?}");
            if let super::super::Value::Str(s) = &entry.value {
                assert!(!shared.contains(&s.as_ptr()), "{key:?}'s value");
            }
        }
    }

    fn cmd_set(key: &str, value: &str) -> Command {
        Command {
            ts_ms: 5,
            op: Op::Set {
                key: Bytes::copy_from_slice(key.as_bytes()),
                value: Bytes::copy_from_slice(value.as_bytes()),
            },
        }
    }

    /// A payload's buffer is exactly its size, and the same bytes as the
    /// plain encoding.
    #[test]
    fn a_payload_is_encoded_into_a_buffer_of_its_size() {
        let elements: Vec<Bytes> = (0..10)
            .map(|i| Bytes::from(format!("element:{i}")))
            .collect();
        let mut args = vec![Bytes::from("RPUSH"), Bytes::from("list:00000001")];
        args.extend(elements);
        let command = Command {
            ts_ms: 1_796_516_548_000,
            op: Op::Exec { db: 0, args },
        };
        let exact = super::encode_exact(&command);
        assert_eq!(exact.capacity(), exact.len());
        assert_eq!(exact, postcard::to_allocvec(&command).unwrap());
        assert_eq!(Command::decode(&command.encode()).unwrap(), command);
    }

    /// The shared decoder gives exactly what postcard gives, for SETs of
    /// every size (the zero-copy path) and for other commands (the fallback),
    /// and the SET's key and value point into the payload.
    #[test]
    fn shared_decode_matches_postcard() {
        let big = vec![b'x'; 70_000];
        for (ts_ms, key, value) in [
            (0u64, &b""[..], &b""[..]),
            (1_700_000_000_000, b"k", b"v"),
            (u64::MAX, b"key:000000000042", &big[..]),
            (127, &big[..200], b"\x00\xff"),
        ] {
            let c = Command {
                ts_ms,
                op: Op::Set {
                    key: Bytes::copy_from_slice(key),
                    value: Bytes::copy_from_slice(value),
                },
            };
            let encoded = c.encode();
            let shared = Command::decode_shared(&encoded).unwrap();
            assert_eq!(shared, c);
            assert_eq!(shared, Command::decode(&encoded).unwrap());
            let Op::Set { key: k, value: v } = &shared.op else {
                unreachable!()
            };
            let range = encoded.as_ptr_range();
            for (what, b) in [("value", v), ("key", k)] {
                if !b.is_empty() {
                    assert!(range.contains(&b.as_ptr()), "the {what} was copied");
                }
            }
        }
        let del = Command {
            ts_ms: 5,
            op: Op::Del {
                keys: vec!["a".into()],
            },
        };
        assert_eq!(Command::decode_shared(&del.encode()).unwrap(), del);
    }

    /// Damaged SET payloads: the shared decoder never panics and agrees with
    /// postcard on whether the bytes are a command (and on the command).
    #[test]
    fn shared_decode_of_damaged_sets_agrees_with_postcard() {
        let c = Command {
            ts_ms: 300,
            op: Op::Set {
                key: "key".into(),
                value: "value".into(),
            },
        };
        let encoded = c.encode().to_vec();
        let mut cases: Vec<Vec<u8>> = (0..encoded.len()).map(|n| encoded[..n].to_vec()).collect();
        let mut longer = encoded.clone();
        longer.push(0);
        cases.push(longer);
        for i in 0..encoded.len() {
            for bit in 0..8 {
                let mut flipped = encoded.clone();
                flipped[i] ^= 1 << bit;
                cases.push(flipped);
            }
        }
        cases.push(vec![0xff; 11]);
        cases.push(vec![
            0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02, 0,
        ]);
        for case in cases {
            let bytes = Bytes::from(case.clone());
            let shared = Command::decode_shared(&bytes).ok();
            let general = Command::decode(&case).ok();
            assert_eq!(shared, general, "payload {case:?}");
        }
    }

    /// The check without decoding agrees with postcard on every SET and
    /// Exec, whole, cut short, with a byte more or with any one bit flipped,
    /// and on commands of other shapes.
    #[test]
    fn checking_a_payload_agrees_with_decoding_it() {
        let long = "x".repeat(300);
        let commands = vec![
            cmd_set("key", "value"),
            cmd_set("", ""),
            Command::exec(1 << 40, 0, &["LPUSH", "list", "a", &long, ""]),
            Command::exec(9, 15, &["LPOP", "list"]),
            Command::exec(9, 255, &[] as &[&str]),
            Command::exec(0, 3, &["SADD", "s", "m"]),
            Command {
                ts_ms: 1,
                op: Op::Del {
                    keys: vec!["a".into()],
                },
            },
        ];
        let mut cases: Vec<Vec<u8>> = Vec::new();
        for command in &commands {
            let encoded = command.encode().to_vec();
            assert!(Command::check(&encoded).is_ok(), "{command:?}");
            cases.extend((0..encoded.len()).map(|n| encoded[..n].to_vec()));
            let mut longer = encoded.clone();
            longer.push(0);
            cases.push(longer);
            for i in 0..encoded.len().min(24) {
                for bit in 0..8 {
                    let mut flipped = encoded.clone();
                    flipped[i] ^= 1 << bit;
                    cases.push(flipped);
                }
            }
        }
        // An Exec that claims 2^62 arguments.
        cases.push(vec![
            1, 2, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40,
        ]);
        for case in cases {
            assert_eq!(
                Command::check(&case).is_ok(),
                Command::decode(&case).is_ok(),
                "payload {case:?}"
            );
        }
        // What takes the shortcut is what postcard decodes.
        assert!(plain_shape(&commands[2].encode()));
        assert!(!plain_shape(&commands[6].encode()), "a DEL decodes in full");
    }

    proptest::proptest! {
        /// Any payload that starts like a SET or an Exec (a varint time,
        /// variant 0 or 2), or like a DEL or a MULTI: the shared decoder and
        /// the check agree with postcard.
        #[test]
        fn shared_decode_and_check_agree_on_arbitrary_payloads(
            ts in proptest::prelude::any::<u64>(),
            variant in 0u8..4,
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
        ) {
            let mut payload = postcard::to_allocvec(&ts).unwrap();
            payload.push(variant);
            payload.extend_from_slice(&tail);
            let general = Command::decode(&payload).ok();
            proptest::prop_assert_eq!(Command::check(&payload).is_ok(), general.is_some());
            let shared = Command::decode_shared(&Bytes::from(payload.clone())).ok();
            proptest::prop_assert_eq!(shared, general);
        }
    }

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
