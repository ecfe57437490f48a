//! The replicated state machine: an in-memory map from key to value.
//!
//! Invariants:
//! - `apply` is deterministic: the same commands in the same order give the same
//!   map and the same outputs on every replica. It reads no clock; the only time it
//!   knows is the `ts_ms` stamped on each command by the leader, and the machine's
//!   `now_ms` only moves forward (the max of the stamps applied).
//! - No I/O here: the caller decodes entries and hands over commands.

mod command;

use std::collections::HashMap;

use bytes::Bytes;

pub use command::{Command, DecodeError, Op, Output};

/// The key space.
#[derive(Debug, Default)]
pub struct Db {
    map: HashMap<Bytes, Bytes>,
    now_ms: u64,
}

impl Db {
    /// An empty map.
    pub fn new() -> Db {
        Db::default()
    }

    /// Applies one committed command and returns the reply its client gets.
    pub fn apply(&mut self, command: &Command) -> Output {
        self.now_ms = self.now_ms.max(command.ts_ms);
        match &command.op {
            Op::Set { key, value } => {
                self.map.insert(key.clone(), value.clone());
                Output::Ok
            }
            Op::Del { keys } => {
                let removed = keys
                    .iter()
                    .filter(|k| self.map.remove(*k).is_some())
                    .count();
                Output::Integer(removed as i64)
            }
        }
    }

    /// The value stored at `key`.
    pub fn get(&self, key: &[u8]) -> Option<&Bytes> {
        self.map.get(key)
    }

    /// True if `key` is present.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.map.contains_key(key)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no key is stored.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The replicated "now": the latest leader timestamp applied.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(ts_ms: u64, op: Op) -> Command {
        Command { ts_ms, op }
    }

    #[test]
    fn set_then_get_returns_value() {
        let mut db = Db::new();
        let out = db.apply(&cmd(
            1,
            Op::Set {
                key: "a".into(),
                value: "1".into(),
            },
        ));
        assert_eq!(out, Output::Ok);
        assert_eq!(db.get(b"a").map(|v| &v[..]), Some(&b"1"[..]));
        assert_eq!(db.len(), 1);
    }

    #[test]
    fn del_counts_only_existing_keys_once() {
        let mut db = Db::new();
        db.apply(&cmd(
            1,
            Op::Set {
                key: "a".into(),
                value: "1".into(),
            },
        ));
        db.apply(&cmd(
            2,
            Op::Set {
                key: "b".into(),
                value: "2".into(),
            },
        ));
        let out = db.apply(&cmd(
            3,
            Op::Del {
                keys: vec!["a".into(), "a".into(), "zz".into(), "b".into()],
            },
        ));
        assert_eq!(out, Output::Integer(2));
        assert!(db.is_empty());
    }

    #[test]
    fn now_only_moves_forward() {
        let mut db = Db::new();
        db.apply(&cmd(10, Op::Del { keys: vec![] }));
        db.apply(&cmd(5, Op::Del { keys: vec![] }));
        assert_eq!(db.now_ms(), 10);
    }

    #[test]
    fn replicas_applying_same_log_are_identical() {
        let log: Vec<Command> = (0..100u64)
            .map(|i| {
                if i % 3 == 0 {
                    cmd(
                        i,
                        Op::Del {
                            keys: vec![format!("k{}", i % 7).into()],
                        },
                    )
                } else {
                    cmd(
                        i,
                        Op::Set {
                            key: format!("k{}", i % 7).into(),
                            value: format!("v{i}").into(),
                        },
                    )
                }
            })
            .collect();
        let (mut a, mut b) = (Db::new(), Db::new());
        let outs_a: Vec<Output> = log.iter().map(|c| a.apply(c)).collect();
        let outs_b: Vec<Output> = log.iter().map(|c| b.apply(c)).collect();
        assert_eq!(outs_a, outs_b);
        assert_eq!(a.map, b.map);
    }
}
