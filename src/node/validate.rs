//! The node's checks on peer input that the Raft core cannot judge, because
//! they concern payloads it never looks into; `raft/validate.rs` has the
//! protocol checks and the full list of what a member's message is refused
//! for. Here:
//!
//! - **AppendEntries payloads**: every `Normal` entry must decode as a
//!   [`kv::Command`] exactly as apply will decode it, and a `Noop` entry must
//!   be empty. One bad entry refuses the whole message before the core sees
//!   it, so a follower never persists an entry it could not apply (a
//!   committed entry that does not decode would stop the node at every
//!   restart).
//! - **Forwarded writes** (`/raft/forward`): only operations a client can
//!   cause — what `server` builds from a RESP command: `Set`, `Del`, `Exec`
//!   and `Multi`, in a database that exists, with a command name. `Expire`
//!   and `Evict` are the leader's own (active expiry, `maxmemory`), never a
//!   client's, and are refused.
//!
//! Refusals are counted ([`crate::metrics::RAFT_PEER_INPUT_REFUSED_TOTAL`])
//! and logged through [`RefusalLog`]: at most one line per interval, carrying
//! how many were refused since the previous line, because a peer can send
//! them as fast as it likes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::kv;
use crate::raft::{EntryKind, Envelope, Message, NodeId};

/// Why the node refused a peer's input (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputRefusal {
    /// An AppendEntries entry whose payload apply could not decode.
    #[error("entry {index} does not decode as a command: {reason}")]
    UndecodableEntry {
        /// The entry's index.
        index: u64,
        /// The decode error.
        reason: String,
    },
    /// A forwarded operation no client can send.
    #[error("forwarded operation {op} is not one a client can send")]
    ForwardedInternalOp {
        /// The operation's name.
        op: &'static str,
    },
    /// A forwarded operation with an impossible database or no command.
    #[error("forwarded operation is malformed: {reason}")]
    ForwardedMalformed {
        /// What is wrong.
        reason: &'static str,
    },
}

impl InputRefusal {
    /// A short stable name, for a metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            InputRefusal::UndecodableEntry { .. } => "undecodable_entry",
            InputRefusal::ForwardedInternalOp { .. } => "forwarded_internal_op",
            InputRefusal::ForwardedMalformed { .. } => "forwarded_malformed",
        }
    }
}

/// Checks the payloads of an inbound message (module docs). Anything but an
/// AppendEntries passes.
///
/// # Errors
/// [`InputRefusal::UndecodableEntry`] for the first entry apply could not take.
pub fn check_entry_payloads(envelope: &Envelope) -> Result<(), InputRefusal> {
    let Message::AppendEntries { entries, .. } = &envelope.message else {
        return Ok(());
    };
    for entry in entries {
        match entry.kind {
            EntryKind::Noop if entry.data.is_empty() => {}
            EntryKind::Noop => {
                return Err(InputRefusal::UndecodableEntry {
                    index: entry.index.0,
                    reason: "a no-op entry carries data".to_string(),
                })
            }
            // The Raft core checks these itself (`raft/validate.rs`).
            EntryKind::Membership => {}
            EntryKind::Normal => {
                if let Err(e) = kv::Command::check(&entry.data) {
                    return Err(InputRefusal::UndecodableEntry {
                        index: entry.index.0,
                        reason: e.to_string(),
                    });
                }
            }
        }
    }
    Ok(())
}

/// Checks a forwarded batch of writes (module docs).
///
/// # Errors
/// The first operation no client could have caused.
pub fn check_forwarded_ops(ops: &[kv::Op]) -> Result<(), InputRefusal> {
    let command_ok = |db: u8, args: &[bytes::Bytes]| {
        if usize::from(db) >= kv::DATABASES {
            return Err(InputRefusal::ForwardedMalformed {
                reason: "database index out of range",
            });
        }
        let Some(name) = args.first().filter(|name| !name.is_empty()) else {
            return Err(InputRefusal::ForwardedMalformed {
                reason: "no command name",
            });
        };
        // The replicated half of CONFIG SET (maxmemory, policy).
        if name.eq_ignore_ascii_case(b"config") {
            return Ok(());
        }
        // The replicated half of SCRIPT (LOAD, FLUSH), checked by the
        // follower's handler before forwarding.
        if name.eq_ignore_ascii_case(b"script") || name.eq_ignore_ascii_case(b"function") {
            return Ok(());
        }
        // Only what a client's check accepted may reach the log: the
        // follower ran the same check before forwarding.
        let accepted = crate::cmd::lookup(name).is_some_and(|(_, spec)| match spec.kind {
            crate::cmd::Kind::Read { check, .. } | crate::cmd::Kind::Write { check, .. } => {
                spec.arity_ok(args.len()) && check(args).is_ok()
            }
            crate::cmd::Kind::Server(_) => false,
        });
        if !accepted {
            return Err(InputRefusal::ForwardedMalformed {
                reason: "not a valid key-space command",
            });
        }
        Ok(())
    };
    for op in ops {
        let op = match op {
            kv::Op::Client { op, .. } => {
                if matches!(
                    **op,
                    kv::Op::Client { .. } | kv::Op::Expire { .. } | kv::Op::Evict { .. }
                ) {
                    return Err(InputRefusal::ForwardedMalformed {
                        reason: "a client entry around an internal or client entry",
                    });
                }
                &**op
            }
            other => other,
        };
        let op = match op {
            kv::Op::AsUser { op, .. } => {
                if matches!(
                    **op,
                    kv::Op::AsUser { .. }
                        | kv::Op::Client { .. }
                        | kv::Op::Expire { .. }
                        | kv::Op::Evict { .. }
                ) {
                    return Err(InputRefusal::ForwardedMalformed {
                        reason: "a user entry around an internal or user entry",
                    });
                }
                &**op
            }
            other => other,
        };
        match op {
            // A user change a client sent to a follower: the follower
            // checked the client's permissions before forwarding it.
            // Pub/Sub: the follower checked channel permissions; any
            // subscriber identity is harmless (it only names who hears).
            kv::Op::Set { .. } | kv::Op::Del { .. } | kv::Op::Acl(_) | kv::Op::PubSub(_) => {}
            kv::Op::Exec { db, args } => command_ok(*db, args)?,
            kv::Op::Multi { commands, watched } => {
                for (db, args) in commands {
                    command_ok(*db, args)?;
                }
                if watched.iter().any(|w| usize::from(w.db) >= kv::DATABASES) {
                    return Err(InputRefusal::ForwardedMalformed {
                        reason: "watched key in a database out of range",
                    });
                }
            }
            kv::Op::Pops { commands } => {
                for (db, args) in commands {
                    command_ok(*db, args)?;
                    let blocking = args
                        .first()
                        .and_then(|name| crate::cmd::lookup(name))
                        .is_some_and(|(_, spec)| spec.blocking.is_some());
                    if !blocking {
                        return Err(InputRefusal::ForwardedMalformed {
                            reason: "not a blocking command in a batch of pops",
                        });
                    }
                }
            }
            kv::Op::Expire { .. } => {
                return Err(InputRefusal::ForwardedInternalOp { op: "Expire" })
            }
            kv::Op::Evict { .. } => return Err(InputRefusal::ForwardedInternalOp { op: "Evict" }),
            kv::Op::AsUser { .. } | kv::Op::Client { .. } => unreachable!("unwrapped above"),
        }
    }
    Ok(())
}

/// Counts refused peer input and logs it at most once per interval, with
/// the number refused since the last line (a peer can trigger it at will).
#[derive(Debug)]
pub struct RefusalLog {
    interval: Duration,
    last_line: Option<Instant>,
    suppressed: u64,
    counters: HashMap<&'static str, metrics::Counter>,
}

impl RefusalLog {
    /// A log that writes at most one line per `interval`.
    pub fn new(interval: Duration) -> RefusalLog {
        RefusalLog {
            interval,
            last_line: None,
            suppressed: 0,
            counters: HashMap::new(),
        }
    }

    /// Records one refusal of `kind` from `from`, `now`.
    pub fn refused(
        &mut self,
        now: Instant,
        from: NodeId,
        kind: &'static str,
        reason: &dyn std::fmt::Display,
    ) {
        self.counters
            .entry(kind)
            .or_insert_with(|| crate::metrics::Metrics::peer_input_refused(kind))
            .increment(1);
        let due = self
            .last_line
            .is_none_or(|last| now.saturating_duration_since(last) >= self.interval);
        if !due {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(
            from = from.0,
            kind,
            refused_since_last_line = self.suppressed,
            %reason,
            "peer input refused"
        );
        self.last_line = Some(now);
        self.suppressed = 0;
    }

    /// How many refusals were not logged since the last line.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }
}

#[cfg(test)]
mod tests {
    //! The peer surface under random and mutated input: transport decode,
    //! then the node's payload check, then `Raft::step`, on a node in each
    //! role. Seeded and bounded: `DKV_FUZZ_CASES` (default 3000) cases from
    //! `DKV_FUZZ_SEED` (default fixed). No input may panic.

    use bytes::Bytes;
    use rand::rngs::ChaCha8Rng;
    use rand::{RngExt, SeedableRng};

    use super::*;
    use crate::raft::{Config, Entry, InitialState, LogIndex, Raft, Role, SnapshotMeta, Term};
    use crate::transport::{self, SnapshotChunk};

    const VOTERS: [u64; 3] = [1, 2, 3];

    fn config(id: u64) -> Config {
        Config {
            pre_vote: false,
            ..Config::new(NodeId(id), VOTERS.iter().copied().map(NodeId).collect())
        }
    }

    fn drain(raft: &mut Raft) {
        for _ in 0..4 {
            if !raft.has_ready() {
                return;
            }
            let ready = raft.ready();
            raft.advance(ready);
        }
    }

    /// Node 1 as follower, candidate and leader (with a few entries).
    fn nodes_in_each_role(seed: u64) -> Vec<Raft> {
        let follower = Raft::new(config(1), InitialState::default(), seed).expect("valid");
        let mut candidate = Raft::new(config(1), InitialState::default(), seed).expect("valid");
        while candidate.status().role != Role::Candidate {
            candidate.tick();
        }
        drain(&mut candidate);
        let mut leader = Raft::new(config(1), InitialState::default(), seed).expect("valid");
        while leader.status().role != Role::Candidate {
            leader.tick();
        }
        drain(&mut leader);
        let term = leader.status().term;
        leader
            .step(Envelope {
                from: NodeId(2),
                to: NodeId(1),
                message: Message::RequestVoteResponse {
                    term,
                    vote_granted: true,
                },
            })
            .expect("vote");
        assert_eq!(leader.status().role, Role::Leader);
        for i in 0..3 {
            let _ = leader.propose(command(i));
        }
        drain(&mut leader);
        vec![follower, candidate, leader]
    }

    fn command(i: u64) -> Bytes {
        kv::Command {
            ts_ms: 1_000 + i,
            op: kv::Op::Set {
                key: Bytes::from(format!("k{i}")),
                value: Bytes::from_static(b"v"),
            },
        }
        .encode()
    }

    /// Values worth trying for terms and indexes.
    fn interesting(rng: &mut ChaCha8Rng) -> u64 {
        match rng.random_range(0..8) {
            0 => 0,
            1 => 1,
            2 => rng.random_range(2..6),
            3 => u64::MAX,
            4 => u64::MAX - 1,
            5 => 1000 + rng.random_range(0..3),
            6 => rng.random::<u64>(),
            _ => rng.random_range(0..20),
        }
    }

    fn random_entries(rng: &mut ChaCha8Rng) -> Vec<Entry> {
        let n = rng.random_range(0..4);
        let start = interesting(rng);
        (0..n)
            .map(|i| Entry {
                term: Term(interesting(rng)),
                index: LogIndex(start.wrapping_add(i)),
                kind: if rng.random_bool(0.2) {
                    EntryKind::Noop
                } else {
                    EntryKind::Normal
                },
                data: if rng.random_bool(0.7) {
                    command(i)
                } else {
                    Bytes::from(vec![rng.random::<u8>(); rng.random_range(0..8)])
                },
            })
            .collect()
    }

    /// A structurally valid message with adversarial field values.
    fn random_message(rng: &mut ChaCha8Rng) -> Message {
        let term = Term(interesting(rng));
        match rng.random_range(0..9) {
            0 => Message::RequestVote {
                term,
                last_log_index: LogIndex(interesting(rng)),
                last_log_term: Term(interesting(rng)),
                transfer: rng.random_bool(0.5),
            },
            1 => Message::RequestVoteResponse {
                term,
                vote_granted: rng.random_bool(0.5),
            },
            2 => Message::PreVote {
                term,
                last_log_index: LogIndex(interesting(rng)),
                last_log_term: Term(interesting(rng)),
            },
            3 => Message::PreVoteResponse {
                term,
                vote_granted: rng.random_bool(0.5),
            },
            4 => Message::TimeoutNow { term },
            5 => Message::InstallSnapshot {
                term,
                meta: SnapshotMeta {
                    last_included_index: LogIndex(interesting(rng)),
                    last_included_term: Term(interesting(rng)),
                    membership: if rng.random_bool(0.7) {
                        crate::raft::Membership::voters_only(VOTERS.iter().copied().map(NodeId))
                    } else {
                        crate::raft::Membership::voters_only([NodeId(interesting(rng))])
                    },
                },
            },
            6 => Message::InstallSnapshotResponse {
                term,
                last_included_index: LogIndex(interesting(rng)),
                success: rng.random_bool(0.5),
            },
            7 => Message::AppendEntries {
                term,
                prev_log_index: LogIndex(interesting(rng)),
                prev_log_term: Term(interesting(rng)),
                entries: random_entries(rng),
                leader_commit: LogIndex(interesting(rng)),
                read_ctx: interesting(rng),
            },
            _ => Message::AppendEntriesResponse {
                term,
                success: rng.random_bool(0.5),
                match_index: LogIndex(interesting(rng)),
                conflict_index: LogIndex(interesting(rng)),
                conflict_term: rng.random_bool(0.5).then(|| Term(interesting(rng))),
                read_ctx: interesting(rng),
            },
        }
    }

    /// Random bytes, or a mutation of an encoded message.
    fn random_bytes(rng: &mut ChaCha8Rng) -> Vec<u8> {
        if rng.random_bool(0.2) {
            let len = rng.random_range(0..64);
            return (0..len).map(|_| rng.random::<u8>()).collect();
        }
        let envelope = Envelope {
            from: NodeId(rng.random_range(0..5)),
            to: NodeId(1),
            message: random_message(rng),
        };
        let mut bytes = transport::encode(&envelope).to_vec();
        for _ in 0..rng.random_range(1..4) {
            if bytes.is_empty() {
                break;
            }
            let at = rng.random_range(0..bytes.len());
            match rng.random_range(0..5) {
                0 => bytes[at] ^= 1 << rng.random_range(0..8),
                1 => bytes[at] = rng.random::<u8>(),
                2 => bytes.truncate(at),
                3 => bytes.insert(at, 0xff),
                _ => {
                    bytes.remove(at);
                }
            }
        }
        bytes
    }

    /// Feeds one envelope the way the driver does; a refusal is fine, a
    /// panic is the failure this test looks for.
    fn feed(raft: &mut Raft, envelope: Envelope) {
        if check_entry_payloads(&envelope).is_ok() {
            let _ = raft.step(envelope);
        }
        raft.tick();
        drain(raft);
    }

    #[test]
    fn no_peer_input_panics_a_node_in_any_role() {
        let cases: u64 = std::env::var("DKV_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3000);
        let seed: u64 = std::env::var("DKV_FUZZ_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0x5eed_d00d);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut nodes = nodes_in_each_role(seed);
        let mut decoded = 0u64;
        for case in 0..cases {
            if case % 200 == 199 {
                nodes = nodes_in_each_role(seed.wrapping_add(case));
            }
            let bytes = random_bytes(&mut rng);
            // The forward and snapshot routes decode from the same bytes.
            if let Ok(ops) = transport::decode::<Vec<kv::Op>>(&bytes) {
                let _ = check_forwarded_ops(&ops);
            }
            let _ = transport::decode::<SnapshotChunk>(&bytes);
            let mut envelopes: Vec<Envelope> = Vec::new();
            if let Ok(envelope) = transport::decode::<Envelope>(&bytes) {
                envelopes.push(envelope);
            }
            if let Ok(batch) = transport::decode_frame(&bytes) {
                envelopes.extend(batch);
            }
            // Structured input reaches deeper than bytes that rarely decode.
            envelopes.push(Envelope {
                from: NodeId(rng.random_range(1..4)),
                to: NodeId(1),
                message: random_message(&mut rng),
            });
            for mut envelope in envelopes {
                decoded += 1;
                if rng.random_bool(0.8) {
                    // Mostly from a member, so the checks past membership run.
                    envelope.to = NodeId(1);
                    envelope.from = NodeId(rng.random_range(2..4));
                }
                for raft in &mut nodes {
                    feed(raft, envelope.clone());
                }
            }
        }
        assert!(decoded >= cases, "every case feeds at least one message");
    }

    #[test]
    fn an_entry_that_does_not_decode_refuses_the_whole_append() {
        let good = Entry {
            term: Term(1),
            index: LogIndex(1),
            kind: EntryKind::Normal,
            data: command(1),
        };
        let bad = Entry {
            index: LogIndex(2),
            data: Bytes::from_static(b"\xff\xff\xff"),
            ..good.clone()
        };
        let append = |entries: Vec<Entry>| Envelope {
            from: NodeId(2),
            to: NodeId(1),
            message: Message::AppendEntries {
                term: Term(1),
                prev_log_index: LogIndex(0),
                prev_log_term: Term(0),
                entries,
                leader_commit: LogIndex(2),
                read_ctx: 0,
            },
        };
        assert!(check_entry_payloads(&append(vec![good.clone()])).is_ok());
        assert!(matches!(
            check_entry_payloads(&append(vec![good.clone(), bad])),
            Err(InputRefusal::UndecodableEntry { index: 2, .. })
        ));
        let noop_with_data = Entry {
            kind: EntryKind::Noop,
            ..good
        };
        assert!(check_entry_payloads(&append(vec![noop_with_data])).is_err());
    }

    #[test]
    fn forwarded_expire_and_evict_are_refused_client_ops_pass() {
        let keys = vec![(0u8, Bytes::from_static(b"k"))];
        assert!(matches!(
            check_forwarded_ops(&[kv::Op::Expire { keys: keys.clone() }]),
            Err(InputRefusal::ForwardedInternalOp { op: "Expire" })
        ));
        assert!(matches!(
            check_forwarded_ops(&[kv::Op::Evict { keys }]),
            Err(InputRefusal::ForwardedInternalOp { op: "Evict" })
        ));
        let exec = |line: &'static str| kv::Op::Exec {
            db: 0,
            args: line
                .split(' ')
                .map(|a| Bytes::from_static(a.as_bytes()))
                .collect(),
        };
        let set = exec("SET k v");
        assert!(check_forwarded_ops(std::slice::from_ref(&set)).is_ok());
        // Only what a client's own check accepts: arity, syntax, and
        // key-space commands only.
        for refused in ["SET k", "SET k v EX soon", "CLIENT LIST", "NOSUCH k"] {
            assert!(
                matches!(
                    check_forwarded_ops(&[exec(refused)]),
                    Err(InputRefusal::ForwardedMalformed { .. })
                ),
                "{refused}"
            );
        }
        let multi = |line: &'static str| kv::Op::Multi {
            commands: vec![(
                0,
                line.split(' ')
                    .map(|a| Bytes::from_static(a.as_bytes()))
                    .collect(),
            )],
            watched: vec![],
        };
        assert!(check_forwarded_ops(&[multi("GET k")]).is_ok());
        // A batch of pops holds blocking commands only, each checked.
        let pops = |lines: &[&'static str]| kv::Op::Pops {
            commands: lines
                .iter()
                .map(|line| {
                    (
                        0,
                        line.split(' ')
                            .map(|a| Bytes::from_static(a.as_bytes()))
                            .collect(),
                    )
                })
                .collect(),
        };
        assert!(check_forwarded_ops(&[pops(&["BLPOP q 0", "BLMOVE a b LEFT RIGHT 1"])]).is_ok());
        for refused in [
            &["BLPOP q 0", "LPOP q"][..],
            &["BLPOP q x"][..],
            &["BLMOVE a b UP RIGHT 1"][..],
        ] {
            assert!(
                check_forwarded_ops(&[pops(refused)]).is_err(),
                "{refused:?}"
            );
        }
        assert!(check_forwarded_ops(&[multi("SET k v PX -1")]).is_err());
        let bad_db = kv::Op::Exec {
            db: 16,
            args: vec![Bytes::from_static(b"SET")],
        };
        assert!(check_forwarded_ops(&[set, bad_db]).is_err());
        assert!(check_forwarded_ops(&[kv::Op::Exec {
            db: 0,
            args: vec![]
        }])
        .is_err());
    }

    #[test]
    fn refusals_are_logged_at_most_once_per_interval_with_a_count() {
        let mut log = RefusalLog::new(std::time::Duration::from_secs(5));
        let start = Instant::now();
        for i in 0..100u64 {
            log.refused(
                start + std::time::Duration::from_millis(i),
                NodeId(2),
                "x",
                &"why",
            );
        }
        assert_eq!(log.suppressed(), 99, "one line, then counted");
        log.refused(
            start + std::time::Duration::from_secs(6),
            NodeId(2),
            "x",
            &"why",
        );
        assert_eq!(log.suppressed(), 0, "the next line reports the count");
    }
}
