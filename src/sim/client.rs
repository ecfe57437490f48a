//! Simulated clients and the history they record.
//!
//! Each client has at most one operation in flight on a few shared keys:
//! - a write (SET/DEL) is proposed on the node the client believes leads; it
//!   completes when that node applies the proposal's (index, term), fails
//!   definitely (and leaves no trace in the history) on `NotLeader` or
//!   `TransferInProgress` (nothing was appended), or when a
//!   different term is applied at that index, and has an unknown outcome if
//!   the node crashes or the write does not resolve before its deadline;
//! - a read (GET) goes through `read_index` and is answered from the node's
//!   map once it has applied up to the read index; a failed read is dropped
//!   (it changed nothing). Rule break (e) answers it from any node's map at
//!   once instead.
//!
//! Times in the history are a logical clock bumped at every call and return,
//! so the order the simulator processed events in is the real-time order.

use bytes::Bytes;
use rand::rngs::ChaCha8Rng;
use rand::RngExt;

use super::node::SimNode;
use crate::kv::{Command, Op, Output};
use crate::lincheck::{Operation, RegisterInput, RegisterOutput};
use crate::raft::{Error, LogIndex, NodeId, Term};

/// An operation of the history: `(key, op)` → result.
pub type HistoryOp = Operation<(Vec<u8>, RegisterInput), RegisterOutput>;

/// The keys clients touch (few, so operations conflict).
pub const KEYS: [&[u8]; 3] = [b"k0", b"k1", b"k2"];

/// Ticks a write may stay unresolved before its outcome counts as unknown.
const WRITE_DEADLINE_TICKS: u64 = 120;
/// Ticks a read may take before the client gives up.
const READ_DEADLINE_TICKS: u64 = 60;

enum Pending {
    Idle {
        until: u64,
    },
    Write {
        op: HistoryOp,
        node: NodeId,
        index: LogIndex,
        term: Term,
        deadline: u64,
    },
    Read {
        op: HistoryOp,
        node: NodeId,
        ctx: u64,
        index: Option<LogIndex>,
        deadline: u64,
    },
}

struct Client {
    id: u64,
    pending: Pending,
    leader_hint: Option<NodeId>,
}

/// An acknowledged write: which entry it was.
#[derive(Clone, Debug)]
pub struct AckedWrite {
    /// Its place in the log.
    pub index: LogIndex,
    /// Its term.
    pub term: Term,
    /// What it did.
    pub op: HistoryOp,
}

/// All clients, their history and the acknowledged writes.
pub struct Clients {
    clients: Vec<Client>,
    /// Finished operations (completed or unknown).
    pub history: Vec<HistoryOp>,
    /// Writes whose success a client saw.
    pub acked: Vec<AckedWrite>,
    clock: u64,
    next_ctx: u64,
    next_value: u64,
    /// Rule break (e): serve reads from a node's local map, no ReadIndex.
    pub read_without_read_index: bool,
}

impl Clients {
    /// `count` idle clients.
    pub fn new(count: u64) -> Clients {
        Clients {
            clients: (0..count)
                .map(|id| Client {
                    id,
                    pending: Pending::Idle { until: 0 },
                    leader_hint: None,
                })
                .collect(),
            history: Vec::new(),
            acked: Vec::new(),
            clock: 0,
            next_ctx: 1,
            next_value: 0,
            read_without_read_index: false,
        }
    }

    fn tick_clock(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Idle clients whose think time is over start an operation.
    pub fn start_ops(&mut self, rng: &mut ChaCha8Rng, now: u64, nodes: &mut [SimNode]) {
        for c in 0..self.clients.len() {
            let Pending::Idle { until } = self.clients[c].pending else {
                continue;
            };
            if until > now {
                continue;
            }
            let key = KEYS[rng.random_range(0..KEYS.len())].to_vec();
            let pick = self.clients[c]
                .leader_hint
                .filter(|_| rng.random_range(0..8) != 0)
                .unwrap_or(NodeId(rng.random_range(1..=nodes.len() as u64)));
            let idle = Pending::Idle {
                until: now + rng.random_range(2..8),
            };
            let kind = rng.random_range(0..20);
            if kind < 8 && self.read_without_read_index {
                // Rule break (e): a local read on whichever node was picked.
                let node = &nodes[pick.0 as usize - 1];
                if node.is_up() {
                    let value = node.db.get(&key).map(|v| v.to_vec());
                    let call = self.tick_clock();
                    let ret = self.tick_clock();
                    self.history.push(Operation {
                        client: self.clients[c].id,
                        input: (key, RegisterInput::Get),
                        call,
                        ret: Some((ret, RegisterOutput::Value(value))),
                    });
                }
                self.clients[c].pending = idle;
                continue;
            }
            let Some(raft) = nodes[pick.0 as usize - 1].raft.as_mut() else {
                self.clients[c].leader_hint = None;
                self.clients[c].pending = idle;
                continue;
            };
            let (input, result) = if kind < 8 {
                let ctx = self.next_ctx;
                self.next_ctx += 1;
                (
                    RegisterInput::Get,
                    raft.read_index(ctx).map(|()| (ctx, None)),
                )
            } else {
                let (input, op) = if kind < 16 {
                    self.next_value += 1;
                    let value = format!("v{}", self.next_value).into_bytes();
                    let op = Op::Set {
                        key: Bytes::from(key.clone()),
                        value: Bytes::from(value.clone()),
                    };
                    (RegisterInput::Set(value), op)
                } else {
                    let op = Op::Del {
                        keys: vec![Bytes::from(key.clone())],
                    };
                    (RegisterInput::Del, op)
                };
                let data = Command { ts_ms: now, op }.encode();
                (input, raft.propose(data).map(|(i, t)| (0, Some((i, t)))))
            };
            match result {
                Err(Error::NotLeader { leader }) => {
                    self.clients[c].leader_hint = leader;
                    self.clients[c].pending = idle;
                }
                // Not appended: the leader is handing over (thesis §3.10).
                Err(Error::TransferInProgress { to }) => {
                    self.clients[c].leader_hint = Some(to);
                    self.clients[c].pending = idle;
                }
                Err(other) => panic!("unexpected error from the core: {other}"),
                Ok((ctx, proposal)) => {
                    self.clients[c].leader_hint = Some(pick);
                    let op = Operation {
                        client: self.clients[c].id,
                        input: (key, input),
                        call: self.tick_clock(),
                        ret: None,
                    };
                    self.clients[c].pending = match proposal {
                        Some((index, term)) => Pending::Write {
                            op,
                            node: pick,
                            index,
                            term,
                            deadline: now + WRITE_DEADLINE_TICKS,
                        },
                        None => Pending::Read {
                            op,
                            node: pick,
                            ctx,
                            index: None,
                            deadline: now + READ_DEADLINE_TICKS,
                        },
                    };
                }
            }
        }
    }

    /// `node` applied `(index, term)` with `output`: resolves the writes
    /// waiting for that index there.
    pub fn on_apply(&mut self, now: u64, node: NodeId, index: LogIndex, term: Term, out: &Output) {
        for c in 0..self.clients.len() {
            let Pending::Write {
                node: n,
                index: i,
                term: t,
                ..
            } = &self.clients[c].pending
            else {
                continue;
            };
            if *n != node || *i != index {
                continue;
            }
            let succeeded = *t == term;
            let Pending::Write { mut op, .. } = std::mem::replace(
                &mut self.clients[c].pending,
                Pending::Idle { until: now + 1 },
            ) else {
                unreachable!("matched above");
            };
            if !succeeded {
                // Another entry took the slot: the write definitely failed.
                continue;
            }
            let output = match out {
                Output::Ok => RegisterOutput::Ok,
                Output::Integer(n) => RegisterOutput::Deleted(*n),
                other => panic!("unexpected output {other:?} for {op:?}"),
            };
            op.ret = Some((self.tick_clock(), output));
            self.acked.push(AckedWrite {
                index,
                term,
                op: op.clone(),
            });
            self.history.push(op);
        }
    }

    /// A read tagged `ctx` became safe on `node` once `index` is applied.
    pub fn on_read_state(&mut self, node: NodeId, ctx: u64, index: LogIndex) {
        for client in &mut self.clients {
            if let Pending::Read {
                node: n,
                ctx: c,
                index: i,
                ..
            } = &mut client.pending
            {
                if *n == node && *c == ctx {
                    *i = Some(index);
                }
            }
        }
    }

    /// Serves reads whose node caught up, and expires overdue operations.
    pub fn poll(&mut self, now: u64, nodes: &[SimNode]) {
        for c in 0..self.clients.len() {
            let done = match &self.clients[c].pending {
                Pending::Idle { .. } => false,
                Pending::Write { deadline, .. } => *deadline <= now,
                Pending::Read {
                    node,
                    index,
                    deadline,
                    ..
                } => {
                    let node = &nodes[node.0 as usize - 1];
                    *deadline <= now
                        || index.is_some_and(|i| node.is_up() && node.applied_index >= i.0)
                }
            };
            if done {
                self.finish(c, now, Some(nodes));
            }
        }
    }

    /// `node` crashed: its writes become unknown, its reads fail.
    pub fn on_crash(&mut self, now: u64, node: NodeId) {
        for c in 0..self.clients.len() {
            let on_node = match &self.clients[c].pending {
                Pending::Idle { .. } => false,
                Pending::Write { node: n, .. } | Pending::Read { node: n, .. } => *n == node,
            };
            if on_node {
                self.finish(c, now, None);
            }
        }
    }

    /// Ends every operation still in flight (writes unknown, reads dropped).
    pub fn abandon_all(&mut self, now: u64) {
        for c in 0..self.clients.len() {
            self.finish(c, now, None);
        }
    }

    /// Ends client `c`'s operation: a read whose index is applied on a live
    /// node (with `nodes` given) completes; otherwise writes become unknown
    /// and reads are dropped.
    fn finish(&mut self, c: usize, now: u64, nodes: Option<&[SimNode]>) {
        let pending = std::mem::replace(
            &mut self.clients[c].pending,
            Pending::Idle { until: now + 1 },
        );
        match pending {
            Pending::Idle { until } => self.clients[c].pending = Pending::Idle { until },
            Pending::Write { op, .. } => self.history.push(op),
            Pending::Read {
                mut op,
                node,
                index: Some(index),
                ..
            } => {
                let Some(node) = nodes.map(|n| &n[node.0 as usize - 1]) else {
                    return;
                };
                if node.is_up() && node.applied_index >= index.0 {
                    let value = node.db.get(&op.input.0).map(|v| v.to_vec());
                    op.ret = Some((self.tick_clock(), RegisterOutput::Value(value)));
                    self.history.push(op);
                }
            }
            Pending::Read { .. } => {}
        }
    }

    /// Records a read of the converged final state (after every other op).
    pub fn final_read(&mut self, key: &[u8], value: Option<Vec<u8>>) {
        let call = self.tick_clock();
        let ret = self.tick_clock();
        self.history.push(Operation {
            client: u64::MAX,
            input: (key.to_vec(), RegisterInput::Get),
            call,
            ret: Some((ret, RegisterOutput::Value(value))),
        });
    }

    /// Whether any client has an operation in flight.
    pub fn busy(&self) -> bool {
        self.clients
            .iter()
            .any(|c| !matches!(c.pending, Pending::Idle { .. }))
    }
}
