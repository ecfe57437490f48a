//! Simulated clients and the history they record.
//!
//! Each client has at most one operation in flight on a few shared keys, and
//! talks to a node the way a connection does: through the node core, with a
//! [`Handle`] as its reply channel.
//! - a write (SET/DEL) goes to the node the client believes leads
//!   (`propose_batch`); a follower's `NotLeader` naming a leader forwards it
//!   there once (the node's forwarded write). It completes with the core's
//!   answer after the entry applied there; `NotLeader` and `TryAgain` fail
//!   it definitely (no trace in the history); `OutcomeUnknown`, a crash of
//!   the node holding it, or its deadline leave its outcome unknown;
//! - a read (GET) is served from the node's map at once while the node's
//!   published lease holds (thesis §6.4.1), else it goes through
//!   `read_index` and is answered once the map applied the confirmed index;
//!   a failed read is dropped (it changed nothing). Rule break (e) answers it
//!   from any node's map at once instead.
//!
//! Times in the history are a logical clock bumped at every call and return,
//! so the order the simulator processed events in is the real-time order.

use bytes::Bytes;
use rand::rngs::ChaCha8Rng;
use rand::RngExt;

use super::node::{Answer, Handle, SimNode};
use crate::kv::{Op, Output};
use crate::lincheck::{Operation, RegisterInput, RegisterOutput};
use crate::node::{LocalWrite, RequestError};
use crate::raft::{LogIndex, NodeId, Term};

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
        /// What it proposes (kept to forward it).
        write: Op,
        node: NodeId,
        seq: u64,
        /// Already forwarded once (a second `NotLeader` fails it).
        forwarded: bool,
        deadline: u64,
    },
    Read {
        op: HistoryOp,
        node: NodeId,
        seq: u64,
        index: Option<LogIndex>,
        deadline: u64,
    },
}

struct Client {
    id: u64,
    pending: Pending,
    leader_hint: Option<NodeId>,
    /// Sequence number of its last operation (reply handles carry it).
    seq: u64,
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
    next_value: u64,
    /// Rule break (e): serve reads from a node's local map, no ReadIndex.
    pub read_without_read_index: bool,
    /// Reads served under the leader lease.
    pub lease_reads: u64,
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
                    seq: 0,
                })
                .collect(),
            history: Vec::new(),
            acked: Vec::new(),
            clock: 0,
            next_value: 0,
            read_without_read_index: false,
            lease_reads: 0,
        }
    }

    fn tick_clock(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Records a read that completed at once with `value`.
    fn instant_read(&mut self, c: usize, key: Vec<u8>, value: Option<Vec<u8>>) {
        let call = self.tick_clock();
        let ret = self.tick_clock();
        self.history.push(Operation {
            client: self.clients[c].id,
            input: (key, RegisterInput::Get),
            call,
            ret: Some((ret, RegisterOutput::Value(value))),
        });
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
            let node = &mut nodes[pick.0 as usize - 1];
            if !node.is_serving(now) {
                // Down, or paused: the connection times out.
                self.clients[c].leader_hint = None;
                self.clients[c].pending = idle;
                continue;
            }
            if kind < 8 && (self.read_without_read_index || node.lease_holds(now)) {
                // Served from the local map at once: under the leader lease
                // (thesis §6.4.1), or rule break (e) on any node.
                if !self.read_without_read_index {
                    self.lease_reads += 1;
                }
                let value = node.db.get(&key).map(|v| v.to_vec());
                self.instant_read(c, key, value);
                self.clients[c].pending = idle;
                continue;
            }
            self.clients[c].seq += 1;
            let seq = self.clients[c].seq;
            let handle = Handle { client: c, seq };
            let op = Operation {
                client: self.clients[c].id,
                input: (key.clone(), RegisterInput::Get),
                call: self.tick_clock(),
                ret: None,
            };
            if kind < 8 {
                self.clients[c].pending = Pending::Read {
                    op,
                    node: pick,
                    seq,
                    index: None,
                    deadline: now + READ_DEADLINE_TICKS,
                };
                node.read_index(handle);
                continue;
            }
            let (input, write) = if kind < 16 {
                self.next_value += 1;
                let value = format!("v{}", self.next_value).into_bytes();
                let write = Op::Set {
                    key: Bytes::from(key.clone()),
                    value: Bytes::from(value.clone()),
                };
                (RegisterInput::Set(value), write)
            } else {
                let write = Op::Del {
                    keys: vec![Bytes::from(key.clone())],
                };
                (RegisterInput::Del, write)
            };
            self.clients[c].pending = Pending::Write {
                op: Operation {
                    input: (key, input),
                    ..op
                },
                write: write.clone(),
                node: pick,
                seq,
                forwarded: false,
                deadline: now + WRITE_DEADLINE_TICKS,
            };
            node.propose(write, handle, now);
        }
    }

    /// Hands every node's answers to their clients, until no forwarded
    /// write produces more (a follower forwards a write to the leader it
    /// names once, as the node's write path does).
    pub fn collect_answers(&mut self, now: u64, nodes: &mut [SimNode]) {
        for _ in 0..8 {
            let mut any = false;
            for i in 0..nodes.len() {
                let from = nodes[i].id;
                for answer in std::mem::take(&mut nodes[i].outbox) {
                    any = true;
                    self.on_answer(now, from, answer, nodes);
                }
            }
            if !any {
                return;
            }
        }
    }

    fn on_answer(&mut self, now: u64, from: NodeId, answer: Answer, nodes: &mut [SimNode]) {
        let handle = match &answer {
            Answer::Write(h, ..) | Answer::ReadIndex(h, _) | Answer::ReadFailed(h, _) => *h,
        };
        let Some(client) = self.clients.get_mut(handle.client) else {
            return;
        };
        let idle = Pending::Idle { until: now + 1 };
        match (answer, &mut client.pending) {
            (Answer::ReadIndex(_, index), Pending::Read { seq, index: at, .. })
                if *seq == handle.seq =>
            {
                *at = Some(index);
            }
            (Answer::ReadFailed(_, leader), Pending::Read { seq, .. }) if *seq == handle.seq => {
                client.leader_hint = leader;
                client.pending = idle;
            }
            (
                Answer::Write(_, LocalWrite::NotLeader(leader), _),
                Pending::Write {
                    seq,
                    node,
                    forwarded,
                    write,
                    ..
                },
            ) if *seq == handle.seq => {
                let target = leader.filter(|&l| l != from && !*forwarded);
                match target {
                    Some(l) if nodes[l.0 as usize - 1].is_serving(now) => {
                        *forwarded = true;
                        *node = l;
                        let write = write.clone();
                        client.leader_hint = Some(l);
                        nodes[l.0 as usize - 1].propose(write, handle, now);
                    }
                    _ => {
                        // Certainly not appended: it leaves no trace.
                        client.leader_hint = leader;
                        client.pending = idle;
                    }
                }
            }
            (Answer::Write(_, LocalWrite::Done(outcome), at), Pending::Write { seq, .. })
                if *seq == handle.seq =>
            {
                let Pending::Write { mut op, .. } = std::mem::replace(&mut client.pending, idle)
                else {
                    return;
                };
                match outcome {
                    Ok(output) => {
                        let output = match output {
                            Output::Ok => RegisterOutput::Ok,
                            Output::Integer(n) => RegisterOutput::Deleted(n),
                            other => panic!("unexpected output {other:?} for {op:?}"),
                        };
                        op.ret = Some((self.tick_clock(), output));
                        if let Some((index, term)) = at {
                            self.acked.push(AckedWrite {
                                index,
                                term,
                                op: op.clone(),
                            });
                        }
                        self.history.push(op);
                    }
                    // May or may not have been applied.
                    Err(RequestError::OutcomeUnknown(_)) => self.history.push(op),
                    // Certainly not applied: no trace.
                    Err(_) => {}
                }
            }
            // An answer for an operation the client gave up on.
            _ => {}
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
                        || index.is_some_and(|i| node.is_serving(now) && node.applied_index >= i.0)
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

    /// Ends client `c`'s operation: a read whose index is applied on a
    /// serving node (with `nodes` given) completes; otherwise writes become
    /// unknown and reads are dropped.
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
                if node.is_serving(now) && node.applied_index >= index.0 {
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
