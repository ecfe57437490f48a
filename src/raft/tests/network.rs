//! Test helper: an in-memory network of `Raft` nodes. A node's "store" is just
//! the vectors here (persisting is keeping the entries); messages from a Ready
//! are queued and delivered on request; links can be cut to partition.
//!
//! The state machine is the list of applied entries; a snapshot is a prefix
//! of it. Delivering an InstallSnapshot first "streams" the sender's snapshot
//! data to the recipient, as the real driver does out of band.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;

use crate::raft::{
    Config, Entry, EntryKind, Envelope, HardState, InitialState, LogIndex, Message, NodeId, Raft,
    ReadState, Ready, Role, SnapshotMeta, Term,
};

/// Election timeout range and heartbeat used by the tests (ticks).
pub const ELECTION_MIN: u32 = 10;
pub const ELECTION_MAX: u32 = 20;
pub const HEARTBEAT: u32 = 2;

/// How a network builds the config of node `id` among `n` voters.
pub type ConfigFn = fn(u64, u64) -> Config;

/// The config of node `id` in a cluster of voters `1..=n` for the rule-level
/// tests of the paper's §5 core: the test timeouts, with pre-vote and
/// check-quorum off so one tick-out is one election.
pub fn config(id: u64, n: u64) -> Config {
    Config {
        pre_vote: false,
        check_quorum: false,
        ..production_config(id, n)
    }
}

/// The production defaults (pre-vote and check-quorum on, no lease) with the
/// test timeouts.
pub fn production_config(id: u64, n: u64) -> Config {
    Config {
        election_timeout_min_ticks: ELECTION_MIN,
        election_timeout_max_ticks: ELECTION_MAX,
        heartbeat_interval_ticks: HEARTBEAT,
        max_entries_per_append: 64,
        max_bytes_per_append: 1 << 20,
        ..Config::new(NodeId(id), (1..=n).map(NodeId).collect())
    }
}

/// The production defaults plus lease reads.
pub fn lease_config(id: u64, n: u64) -> Config {
    Config {
        lease_reads: true,
        ..production_config(id, n)
    }
}

/// An entry for building logs by hand.
pub fn entry(index: u64, term: u64) -> Entry {
    Entry {
        term: Term(term),
        index: LogIndex(index),
        kind: EntryKind::Normal,
        data: Bytes::from(format!("{index}@{term}")),
    }
}

/// A log with the given terms at indexes 1, 2, …
pub fn log_of_terms(terms: &[u64]) -> Vec<Entry> {
    terms
        .iter()
        .enumerate()
        .map(|(i, &t)| entry(i as u64 + 1, t))
        .collect()
}

/// A lone node with a fresh state, for single-node and message-level tests.
pub fn node(id: u64, n: u64) -> Raft {
    Raft::new(config(id, n), InitialState::default(), id).expect("valid test config")
}

/// Shorthand for an envelope.
pub fn envelope(from: u64, to: u64, message: Message) -> Envelope {
    Envelope {
        from: NodeId(from),
        to: NodeId(to),
        message,
    }
}

/// Ticks `raft` until it starts an election; returns the Ready with the
/// RequestVotes (already advanced).
pub fn tick_until_candidate(raft: &mut Raft) -> Ready {
    for _ in 0..ELECTION_MAX {
        raft.tick();
        if raft.status().role != Role::Follower {
            let ready = raft.ready();
            let copy = clone_ready(&ready);
            raft.advance(ready);
            return copy;
        }
    }
    panic!("no election within {ELECTION_MAX} ticks");
}

/// A copy of a Ready (it is not Clone, on purpose).
pub fn clone_ready(ready: &Ready) -> Ready {
    Ready {
        hard_state: ready.hard_state,
        entries: ready.entries.clone(),
        messages: ready.messages.clone(),
        committed_entries: ready.committed_entries.clone(),
        read_states: ready.read_states.clone(),
        snapshot: ready.snapshot.clone(),
        membership: ready.membership.clone(),
    }
}

/// Takes a Ready, advances it, and returns a copy for assertions.
pub fn drain(raft: &mut Raft) -> Ready {
    let ready = raft.ready();
    let copy = clone_ready(&ready);
    raft.advance(ready);
    copy
}

/// One node and what its driver persisted and applied.
pub struct Node {
    /// The core.
    pub raft: Raft,
    /// Durable hard state.
    pub hard_state: HardState,
    /// Durable log.
    pub log: Vec<Entry>,
    /// Entries applied, in order.
    pub applied: Vec<Entry>,
    /// Read states received.
    pub read_states: Vec<ReadState>,
    /// Durable snapshot: its metadata and its data (the applied prefix).
    pub snapshot: Option<(SnapshotMeta, Vec<Entry>)>,
    /// Snapshot data streamed to this node, waiting for its InstallSnapshot.
    pub incoming_snapshot: Option<Vec<Entry>>,
    /// Every `Ready::membership` handed out, in order.
    pub memberships: Vec<crate::raft::Membership>,
}

/// N nodes and the messages between them.
pub struct Network {
    /// The nodes by id.
    pub nodes: BTreeMap<NodeId, Node>,
    /// Messages sent and not yet delivered, oldest first.
    pub in_flight: VecDeque<Envelope>,
    /// Directed links that drop everything.
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Cluster size.
    n: u64,
    /// Builds each node's config (also on restart).
    make_config: ConfigFn,
    /// Messages the recipient refused (`validate.rs`), as `(to, refusal)`:
    /// dropped like lost messages.
    pub refused: Vec<(NodeId, crate::raft::Refusal)>,
}

impl Network {
    /// A fresh cluster of `n` voters; node `i` is seeded with `seed * 1000 + i`.
    pub fn new(n: u64, seed: u64) -> Network {
        let initial = (1..=n).map(|_| InitialState::default()).collect();
        Network::with_state(initial, seed)
    }

    /// A cluster restored from the given durable states (node ids 1..=len).
    pub fn with_state(initial: Vec<InitialState>, seed: u64) -> Network {
        Network::with_state_and_config(initial, seed, config)
    }

    /// A fresh cluster of `n` voters whose configs come from `make_config`.
    pub fn with_config(n: u64, seed: u64, make_config: ConfigFn) -> Network {
        let initial = (1..=n).map(|_| InitialState::default()).collect();
        Network::with_state_and_config(initial, seed, make_config)
    }

    /// A cluster restored from the given durable states, configs from
    /// `make_config`.
    pub fn with_state_and_config(
        initial: Vec<InitialState>,
        seed: u64,
        make_config: ConfigFn,
    ) -> Network {
        let n = initial.len() as u64;
        let nodes = initial
            .into_iter()
            .enumerate()
            .map(|(i, state)| {
                let id = i as u64 + 1;
                let node = Node {
                    hard_state: state.hard_state,
                    log: state.entries.clone(),
                    raft: Raft::new(make_config(id, n), state, seed * 1000 + id)
                        .expect("valid test state"),
                    applied: Vec::new(),
                    read_states: Vec::new(),
                    snapshot: None,
                    incoming_snapshot: None,
                    memberships: Vec::new(),
                };
                (NodeId(id), node)
            })
            .collect();
        Network {
            nodes,
            in_flight: VecDeque::new(),
            cut: BTreeSet::new(),
            n,
            make_config,
            refused: Vec::new(),
        }
    }

    /// Adds node `id` (the next id), started fresh with `config` (empty
    /// bootstrap voters: a node that joins and learns the membership from
    /// the leader).
    pub fn add_node(&mut self, id: u64, config: Config) {
        assert_eq!(id, self.n + 1, "ids stay contiguous");
        self.n = id;
        let node = Node {
            hard_state: HardState::default(),
            log: Vec::new(),
            raft: Raft::new(config, InitialState::default(), id).expect("valid config"),
            applied: Vec::new(),
            read_states: Vec::new(),
            snapshot: None,
            incoming_snapshot: None,
            memberships: Vec::new(),
        };
        self.nodes.insert(NodeId(id), node);
    }

    /// The node `id`.
    pub fn raft(&mut self, id: u64) -> &mut Raft {
        &mut self.node(id).raft
    }

    /// The node `id` with its store.
    pub fn node(&mut self, id: u64) -> &mut Node {
        self.nodes.get_mut(&NodeId(id)).expect("node exists")
    }

    /// A copy of node `id`'s durable log.
    pub fn log(&self, id: u64) -> Vec<Entry> {
        self.nodes[&NodeId(id)].log.clone()
    }

    /// Runs the driver loop of node `id`: persist, send, apply, advance, until
    /// it has nothing more to do.
    pub fn process(&mut self, id: u64) {
        let node = self.nodes.get_mut(&NodeId(id)).expect("node exists");
        while node.raft.has_ready() {
            let ready = node.raft.ready();
            if let Some(meta) = &ready.snapshot {
                install_snapshot(node, meta);
            }
            persist(node, &ready);
            node.memberships.extend(ready.membership.clone());
            for envelope in &ready.messages {
                if !self.cut.contains(&(envelope.from, envelope.to)) {
                    self.in_flight.push_back(envelope.clone());
                }
            }
            node.applied.extend(ready.committed_entries.iter().cloned());
            node.read_states.extend(ready.read_states.iter().copied());
            node.raft.advance(ready);
        }
    }

    /// Processes every node.
    pub fn process_all(&mut self) {
        for id in 1..=self.n {
            self.process(id);
        }
    }

    /// Delivers the oldest message in flight (and lets the recipient process).
    pub fn deliver_one(&mut self) -> bool {
        let Some(envelope) = self.in_flight.pop_front() else {
            return false;
        };
        self.deliver(envelope);
        true
    }

    /// Delivers one message unless its link is cut, then lets the recipient
    /// process.
    pub fn deliver(&mut self, envelope: Envelope) {
        let to = envelope.to;
        if self.cut.contains(&(envelope.from, to)) {
            return;
        }
        if let Message::InstallSnapshot { meta, .. } = &envelope.message {
            // The driver streamed the data before delivering the message.
            let data = self.nodes[&envelope.from]
                .snapshot
                .as_ref()
                .filter(|(m, _)| m == meta)
                .map(|(_, data)| data.clone())
                .expect("the sender holds the snapshot it sends");
            self.node(to.0).incoming_snapshot = Some(data);
        }
        match self.raft(to.0).step(envelope) {
            Ok(()) => {}
            Err(crate::raft::Error::Refused { refusal, .. }) => self.refused.push((to, refusal)),
            Err(e) => panic!("known peer: {e}"),
        }
        self.process(to.0);
    }

    /// Processes and delivers until no message is left in flight.
    pub fn settle(&mut self) {
        self.process_all();
        let mut budget = 100_000;
        while self.deliver_one() {
            budget -= 1;
            assert!(budget > 0, "network does not settle");
        }
    }

    /// Ticks every node once, then settles.
    pub fn tick_all(&mut self) {
        for id in 1..=self.n {
            self.raft(id).tick();
        }
        self.settle();
    }

    /// Makes `id` leader: ticks it alone until it campaigns, then settles.
    pub fn elect(&mut self, id: u64) {
        for _ in 0..=ELECTION_MAX {
            self.raft(id).tick();
            self.process(id);
            let campaigning = self.in_flight.iter().any(|e| {
                e.from == NodeId(id)
                    && matches!(
                        e.message,
                        Message::PreVote { .. } | Message::RequestVote { .. }
                    )
            });
            if campaigning || self.raft(id).status().role == Role::Leader {
                break;
            }
        }
        self.settle();
        assert_eq!(
            self.raft(id).status().role,
            Role::Leader,
            "node {id} not elected"
        );
    }

    /// The single node that believes it leads the highest term, if any.
    pub fn leader(&self) -> Option<u64> {
        self.nodes
            .values()
            .filter(|n| n.raft.status().role == Role::Leader)
            .max_by_key(|n| n.raft.status().term)
            .map(|n| n.raft.status().id.0)
    }

    /// Drops all traffic between `id` and everyone else.
    pub fn isolate(&mut self, id: u64) {
        for other in 1..=self.n {
            if other != id {
                self.cut.insert((NodeId(id), NodeId(other)));
                self.cut.insert((NodeId(other), NodeId(id)));
            }
        }
    }

    /// Drops traffic in both directions between `a` and `b`.
    pub fn cut(&mut self, a: u64, b: u64) {
        self.cut.insert((NodeId(a), NodeId(b)));
        self.cut.insert((NodeId(b), NodeId(a)));
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Crashes `id` and starts it again from what it persisted.
    pub fn restart(&mut self, id: u64, seed: u64) {
        let n = self.n;
        let make_config = self.make_config;
        let node = self.node(id);
        let initial = InitialState {
            snapshot: node.snapshot.as_ref().map(|(meta, _)| meta.clone()),
            hard_state: node.hard_state,
            entries: node.log.clone(),
        };
        node.raft = Raft::new(make_config(id, n), initial, seed).expect("valid restored state");
        node.applied = node
            .snapshot
            .as_ref()
            .map(|(_, data)| data.clone())
            .unwrap_or_default();
        node.read_states.clear();
    }

    /// The driver of `id` snapshots its state machine (everything applied)
    /// and compacts the log behind it.
    pub fn compact(&mut self, id: u64) -> Vec<Entry> {
        let node = self.node(id);
        let index = node.applied.len() as u64;
        let term = node.applied.last().map_or(Term(0), |e| e.term);
        let node = self.node(id);
        let mut meta = SnapshotMeta {
            last_included_index: LogIndex(index),
            last_included_term: term,
            membership: node.raft.membership_at(LogIndex(index)),
        };
        let dropped = node.raft.compact(meta.clone());
        meta.membership = node.raft.membership_at(LogIndex(index));
        node.log.retain(|e| e.index.0 > index);
        node.snapshot = Some((meta, node.applied.clone()));
        dropped
    }
}

/// The driver's snapshot step (the Ready contract): install the streamed
/// data as the state machine, keep the stored entries after the snapshot only
/// if the stored log has its last entry with the same term, else drop them all.
pub fn install_snapshot(node: &mut Node, meta: &SnapshotMeta) {
    let data = node
        .incoming_snapshot
        .take()
        .expect("snapshot data was streamed before the message");
    assert_eq!(data.len() as u64, meta.last_included_index.0);
    let matches = node
        .log
        .iter()
        .any(|e| e.index == meta.last_included_index && e.term == meta.last_included_term);
    if matches {
        node.log.retain(|e| e.index > meta.last_included_index);
    } else {
        node.log.clear();
    }
    node.applied = data.clone();
    node.snapshot = Some((meta.clone(), data));
}

/// The driver's persistence step: hard state, then entries (truncating a
/// conflicting suffix first).
pub fn persist(node: &mut Node, ready: &Ready) {
    if let Some(hard_state) = ready.hard_state {
        node.hard_state = hard_state;
    }
    if let Some(first) = ready.entries.first() {
        let offset = node
            .snapshot
            .as_ref()
            .map_or(0, |(meta, _)| meta.last_included_index.0);
        let keep = (first.index.0 - offset) as usize - 1;
        assert!(keep <= node.log.len(), "a Ready left a gap in the log");
        node.log.truncate(keep);
        node.log.extend(ready.entries.iter().cloned());
    }
}

/// Node 1 of an `n`-voter cluster made leader of term 1 by hand (votes from
/// 2..=quorum stepped in), with the first Ready (no-op, probes) drained.
pub fn manual_leader(config: Config) -> Raft {
    let n = config.voters.len() as u64;
    let mut raft = Raft::new(config, InitialState::default(), 1).expect("valid config");
    tick_until_candidate(&mut raft);
    for from in 2..=n / 2 + 1 {
        raft.step(envelope(
            from,
            1,
            Message::RequestVoteResponse {
                term: Term(1),
                vote_granted: true,
            },
        ))
        .expect("peer");
    }
    assert_eq!(raft.status().role, Role::Leader);
    drain(&mut raft);
    raft
}

/// A successful AppendEntries response from `from` to node 1.
pub fn ack(from: u64, term: u64, match_index: u64, read_ctx: u64) -> Envelope {
    envelope(
        from,
        1,
        Message::AppendEntriesResponse {
            term: Term(term),
            success: true,
            match_index: LogIndex(match_index),
            conflict_index: LogIndex(0),
            conflict_term: None,
            read_ctx,
        },
    )
}

/// The AppendEntries in `messages` addressed to `to`, as (prev_log_index,
/// entry count, read_ctx).
pub fn appends_to(messages: &[Envelope], to: u64) -> Vec<(u64, usize, u64)> {
    messages
        .iter()
        .filter(|e| e.to == NodeId(to))
        .filter_map(|e| match &e.message {
            Message::AppendEntries {
                prev_log_index,
                entries,
                read_ctx,
                ..
            } => Some((prev_log_index.0, entries.len(), *read_ctx)),
            _ => None,
        })
        .collect()
}
