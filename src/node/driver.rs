//! The driver task: the only owner of the Raft core and the WAL.
//!
//! # Ordering (the persistence contract of `raft/mod.rs`, implemented here once)
//!
//! ```text
//! ready = raft.ready()
//!   1. WAL: append ready.entries, write ready.hard_state, fsync   (blocking thread)
//!   2. transport: send ready.messages          -- only after 1 returned Ok
//!   3. kv: apply ready.committed_entries in order; answer their clients
//!   4. answer ready.read_states (callers then wait for apply >= index)
//! raft.advance(ready)
//! ```
//!
//! Before step 1, a Ready that carries an installed snapshot replaces the map
//! and resets the WAL to it (`snapshot.rs`). After step 3, once
//! `raft.snapshot_every_entries` entries were applied since the last snapshot,
//! the map is copied (a clone of its structure, values shared) and written to
//! a snapshot file on a blocking thread while the node keeps serving; when it
//! is durable the core and the WAL are compacted through the older retained
//! snapshot. An outgoing InstallSnapshot message is held back while the
//! snapshot's data is streamed to its follower, and sent after it.
//!
//! Step 2 after step 1 is what makes a vote or an append acknowledgement safe: the
//! term, vote and entries it depends on are on disk first. A failed write or fsync
//! stops the driver with an error (the page cache can no longer be trusted; never
//! retry an fsync). Proposals that arrive while an fsync runs queue in the request
//! channel and go into the next Ready together: one fsync covers them all.
//!
//! The one exception to "1 before 2": a leader whose term and vote did not
//! change in this Ready sends its messages first and writes meanwhile (thesis
//! §10.2.1). Its AppendEntries and heartbeats acknowledge nothing, and the core
//! counts the leader toward a majority only for entries `advance` confirmed
//! durable, so a commit still needs a majority of fsyncs.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info};

use super::snapshot::{self as snap, SnapshotReceiver, Taken};
use super::{
    LocalRead, LocalWrite, NodeError, NodeRequest, NodeStatus, RequestError, TransferError,
};
use crate::kv;
use crate::metrics::Metrics;
use crate::raft::{
    Entry, EntryKind, Envelope, HardState, LogIndex, Message, NodeId, Raft, Ready, Role,
    SnapshotMeta, Term,
};
use crate::store::{LogStore, SnapshotStore, Wal};
use crate::transport::Transport;

/// Inputs handled per wake-up before the driver turns to Ready, so a flood of one
/// kind cannot starve the others.
const MAX_INPUTS_PER_TURN: usize = 4096;
/// How often the leader looks for expired keys and eviction victims (Redis runs
/// its active expiry cycle 10 times a second too).
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(100);
/// Most keys one housekeeping entry deletes.
const HOUSEKEEPING_MAX_KEYS: usize = 200;

pub(super) struct DriverParts {
    pub raft: Raft,
    pub db: Arc<RwLock<kv::Db>>,
    pub transport: Transport,
    pub requests: mpsc::Receiver<NodeRequest>,
    pub inbound: mpsc::Receiver<Envelope>,
    pub status: watch::Sender<NodeStatus>,
    pub shutdown: watch::Receiver<bool>,
    pub metrics: Metrics,
    pub resp_addrs: HashMap<NodeId, SocketAddr>,
    pub replay_target: LogIndex,
    pub tick: Duration,
    /// Most ticks owed after a pause that one catch-up delivers
    /// (`raft.election_timeout_max_ticks`: past it every timer and lease the
    /// ticks measure has run out anyway).
    pub max_catch_up_ticks: u64,
    pub max_pending_proposals: usize,
    /// [`super::TestFault::EarlyAck`]: answer writes once persisted here.
    pub early_ack: bool,
    /// This node's snapshot directory.
    pub snapshots: Arc<SnapshotStore>,
    /// Snapshots streamed to this node by a leader.
    pub receiver: Arc<SnapshotReceiver>,
    /// `raft.snapshot_every_entries` (0: never).
    pub snapshot_every_entries: u64,
    /// `raft.snapshot_chunk_bytes`.
    pub snapshot_chunk_bytes: usize,
    /// The voters, recorded in every snapshot's meta.
    pub voters: Vec<NodeId>,
    /// The snapshot the map was restored from at start (0: none).
    pub snapshot_index: LogIndex,
    /// Its term.
    pub snapshot_term: Term,
    /// Where the lease deadline for direct reads is published (`lease.rs`).
    pub lease: Arc<super::lease::LeaseGate>,
}

/// Results of background storage work, reported back to the driver.
enum StorageEvent {
    /// A local snapshot was written (or failed).
    SnapshotTaken(Result<Taken, crate::store::SnapshotError>),
    /// A stream of a snapshot to a follower ended.
    StreamEnded { peer: NodeId },
}

struct PendingWrite {
    term: Term,
    reply: oneshot::Sender<LocalWrite>,
}

pub(super) struct Driver {
    parts: DriverParts,
    /// `None` only while a blocking persist owns it.
    wal: Option<Wal>,
    pending_writes: BTreeMap<LogIndex, PendingWrite>,
    pending_reads: HashMap<u64, oneshot::Sender<LocalRead>>,
    next_read_ctx: u64,
    loading: bool,
    leader_changes: u64,
    last_leader: Option<NodeId>,
    last_role: Role,
    /// The hard state covered by the last fsync (`None` before the first).
    synced_hard_state: Option<HardState>,
    /// Ticks between two housekeeping rounds, and since the last one.
    housekeeping_every_ticks: u64,
    ticks_since_housekeeping: u64,
    /// Index of the last housekeeping entry proposed.
    housekeeping_in_flight: Option<LogIndex>,
    /// Index and term of the last entry applied to the map (or of the
    /// snapshot it was restored from).
    applied: (LogIndex, Term),
    /// Index of the newest snapshot taken or installed (0: none).
    last_snapshot_index: LogIndex,
    /// A local snapshot is being written.
    snapshot_in_flight: bool,
    /// Index of the newest snapshot on disk, taken or installed (0: none).
    durable_snapshot_index: LogIndex,
    /// Followers a snapshot is being streamed to, and which one.
    streams: HashMap<NodeId, SnapshotMeta>,
    storage_events_tx: mpsc::UnboundedSender<StorageEvent>,
    storage_events: mpsc::UnboundedReceiver<StorageEvent>,
    /// Monotonic time the core's tick count stands for (see [`Driver::catch_up_ticks`]).
    ticked_until: Instant,
}

impl Driver {
    pub(super) fn new(parts: DriverParts, wal: Wal) -> Driver {
        let loading = parts.replay_target > parts.snapshot_index;
        let (storage_events_tx, storage_events) = mpsc::unbounded_channel();
        Driver {
            applied: (parts.snapshot_index, parts.snapshot_term),
            last_snapshot_index: parts.snapshot_index,
            snapshot_in_flight: false,
            durable_snapshot_index: parts.snapshot_index,
            streams: HashMap::new(),
            storage_events_tx,
            storage_events,
            wal: Some(wal),
            pending_writes: BTreeMap::new(),
            pending_reads: HashMap::new(),
            next_read_ctx: 1,
            loading,
            leader_changes: 0,
            last_leader: None,
            last_role: Role::Follower,
            synced_hard_state: None,
            housekeeping_every_ticks: (HOUSEKEEPING_INTERVAL.as_millis() as u64
                / parts.tick.as_millis().max(1) as u64)
                .max(1),
            ticks_since_housekeeping: 0,
            housekeeping_in_flight: None,
            ticked_until: Instant::now(),
            parts,
        }
    }
}

impl Driver {
    /// Runs until shutdown or a fatal error.
    pub(super) async fn run(mut self) -> Result<(), NodeError> {
        let mut ticker = tokio::time::interval(self.parts.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if self.loading {
            info!(
                commit_index = self.parts.replay_target.0,
                "replaying the write-ahead log"
            );
        }
        let result = self.event_loop(&mut ticker).await;
        if let Err(e) = &result {
            error!(error = %e, "node stopped");
        }
        // Whatever is still waiting gets a definite answer from its sender closing.
        result
    }

    async fn event_loop(&mut self, ticker: &mut tokio::time::Interval) -> Result<(), NodeError> {
        loop {
            // Work left from construction (replay) or the previous turn first.
            while self.parts.raft.has_ready() {
                self.handle_ready().await?;
            }
            self.publish_lease();
            self.publish_status();
            tokio::select! {
                biased;
                changed = self.parts.shutdown.changed() => {
                    if changed.is_err() || *self.parts.shutdown.borrow() {
                        info!("driver stopping");
                        return Ok(());
                    }
                }
                _ = ticker.tick() => {
                    self.catch_up_ticks();
                    self.forget_abandoned_reads();
                    self.housekeeping();
                }
                Some(request) = self.parts.requests.recv() => {
                    // A lease read is judged by the tick count: bring it up to
                    // the clock first.
                    self.catch_up_ticks();
                    self.handle_request(request);
                    for _ in 0..MAX_INPUTS_PER_TURN {
                        match self.parts.requests.try_recv() {
                            Ok(request) => self.handle_request(request),
                            Err(_) => break,
                        }
                    }
                }
                Some(event) = self.storage_events.recv() => {
                    self.storage_event(event).await?;
                }
                Some(envelope) = self.parts.inbound.recv() => {
                    self.step(envelope);
                    for _ in 0..MAX_INPUTS_PER_TURN {
                        match self.parts.inbound.try_recv() {
                            Ok(envelope) => self.step(envelope),
                            Err(_) => break,
                        }
                    }
                }
            }
            self.notice_role_change();
        }
    }

    /// Ticks the core once per whole tick period of monotonic time since the
    /// last tick it got, at most `max_catch_up_ticks` at once.
    ///
    /// The tick count is the core's only clock: election timers, check-quorum
    /// and the leader lease (`raft/read_index.rs`) all count ticks. One tick
    /// per timer wake-up would let a node that was stopped (SIGSTOP, a VM
    /// pause) or starved of CPU for seconds resume with its count barely
    /// moved, and a leader would then serve reads from a lease that expired
    /// in real time while another leader was elected. Counting whole periods
    /// of `Instant` time keeps `ticks * tick <= elapsed`, so every lease the
    /// core grants ends no later in real time than its tick arithmetic says.
    fn catch_up_ticks(&mut self) {
        let now = Instant::now();
        let tick = self.parts.tick.max(Duration::from_millis(1));
        let elapsed = now.saturating_duration_since(self.ticked_until);
        let owed = (elapsed.as_nanos() / tick.as_nanos()).min(u128::from(u64::MAX)) as u64;
        if owed == 0 {
            return;
        }
        let cap = self.parts.max_catch_up_ticks.max(1);
        if owed > cap {
            // Everything the ticks measure has expired; skip the rest.
            self.ticked_until = now;
        } else {
            // `owed` whole periods (u32 is plenty: owed <= cap, a config value).
            self.ticked_until += tick * u32::try_from(owed).unwrap_or(u32::MAX);
        }
        for _ in 0..owed.min(cap) {
            self.parts.raft.tick();
        }
    }

    fn step(&mut self, envelope: Envelope) {
        let from = envelope.from;
        if let Message::InstallSnapshot { meta, .. } = &envelope.message {
            // Its data must be here, complete and durable, before the core
            // may install it (snapshot.rs); the leader sends it again later.
            if !self.parts.receiver.has_received(meta) {
                tracing::debug!(
                    from = from.0,
                    index = meta.last_included_index.0,
                    "InstallSnapshot without its data dropped"
                );
                return;
            }
        }
        if let Err(e) = self.parts.raft.step(envelope) {
            tracing::warn!(from = from.0, error = %e, "raft message rejected");
        }
    }

    fn handle_request(&mut self, request: NodeRequest) {
        match request {
            NodeRequest::Propose { batch } => self.propose_batch(batch),
            NodeRequest::ReadIndex { reply } => self.read_index(reply),
            NodeRequest::TransferLeader { to, reply } => {
                let _ = reply.send(self.transfer_leader(to));
            }
        }
    }

    /// Proposes a batch in order, or answers all of it `NotLeader` (the
    /// caller then sends the whole batch elsewhere, keeping its order).
    fn propose_batch(&mut self, batch: Vec<(kv::Op, oneshot::Sender<LocalWrite>)>) {
        let status = self.parts.raft.status();
        if status.role != Role::Leader || status.transferring_to.is_some() {
            // During a transfer the caller waits for the new leader.
            let leader = status.transferring_to.map_or(status.leader, |_| None);
            for (_, reply) in batch {
                let _ = reply.send(LocalWrite::NotLeader(leader));
            }
            return;
        }
        for (op, reply) in batch {
            self.propose(op, reply);
        }
    }

    fn propose(&mut self, op: kv::Op, reply: oneshot::Sender<LocalWrite>) {
        let status = self.parts.raft.status();
        if status.role != Role::Leader {
            let _ = reply.send(LocalWrite::NotLeader(status.leader));
            return;
        }
        if self.pending_writes.len() >= self.parts.max_pending_proposals {
            let _ = reply.send(LocalWrite::Done(Err(RequestError::TryAgain(
                "too many writes in flight on the leader".to_string(),
            ))));
            return;
        }
        // The leader stamps the time: apply reads no clock (kv module docs).
        let command = kv::Command {
            ts_ms: wall_clock_ms(),
            op,
        };
        match self.parts.raft.propose(command.encode()) {
            Ok((index, term)) => {
                self.pending_writes
                    .insert(index, PendingWrite { term, reply });
            }
            Err(crate::raft::Error::NotLeader { leader }) => {
                let _ = reply.send(LocalWrite::NotLeader(leader));
            }
            // Leadership is moving: the caller waits for the new leader and
            // sends the write there; it was certainly not appended here.
            Err(crate::raft::Error::TransferInProgress { .. }) => {
                let _ = reply.send(LocalWrite::NotLeader(None));
            }
            Err(e @ crate::raft::Error::EntryTooLarge { .. }) => {
                let _ = reply.send(LocalWrite::Done(Err(RequestError::Rejected(format!(
                    "{e}; raise raft.max_bytes_per_append to accept it"
                )))));
            }
            Err(e) => {
                let _ = reply.send(LocalWrite::Done(Err(RequestError::TryAgain(e.to_string()))));
            }
        }
    }

    /// Starts a leadership transfer (thesis §3.10) to `to`, or to the first
    /// other voter when none is named; the core brings the target up to date
    /// before it tells it to campaign.
    fn transfer_leader(&mut self, to: Option<NodeId>) -> Result<NodeId, TransferError> {
        let status = self.parts.raft.status();
        let me = status.id;
        if status.role != Role::Leader {
            return Err(TransferError::NotLeader {
                me,
                leader: status.leader,
            });
        }
        let target = match to {
            Some(to) if to == me || !self.parts.resp_addrs.contains_key(&to) => {
                return Err(TransferError::BadTarget(to));
            }
            Some(to) => to,
            None => {
                let mut peers: Vec<NodeId> = self
                    .parts
                    .resp_addrs
                    .keys()
                    .copied()
                    .filter(|&id| id != me)
                    .collect();
                peers.sort();
                *peers.first().ok_or(TransferError::NoPeers)?
            }
        };
        match self.parts.raft.transfer_leader(target) {
            Ok(()) => Ok(target),
            Err(crate::raft::Error::NotLeader { leader }) => {
                Err(TransferError::NotLeader { me, leader })
            }
            Err(_) => Err(TransferError::BadTarget(target)),
        }
    }

    fn read_index(&mut self, reply: oneshot::Sender<LocalRead>) {
        let status = self.parts.raft.status();
        if status.role != Role::Leader {
            let _ = reply.send(LocalRead::NotLeader(status.leader));
            return;
        }
        let ctx = self.next_read_ctx;
        self.next_read_ctx += 1;
        match self.parts.raft.read_index(ctx) {
            Ok(()) => {
                self.pending_reads.insert(ctx, reply);
            }
            Err(_) => {
                let _ = reply.send(LocalRead::NotLeader(self.parts.raft.status().leader));
            }
        }
    }

    /// Active expiry and eviction (ARCHITECTURE.md, the state machine): every
    /// [`HOUSEKEEPING_INTERVAL`] the leader proposes deleting keys that expired by
    /// its clock and, over `maxmemory`, the victims its policy picks, so every
    /// replica removes the same keys at the same log index. One housekeeping entry
    /// is in flight at a time.
    fn housekeeping(&mut self) {
        self.ticks_since_housekeeping += 1;
        if self.ticks_since_housekeeping < self.housekeeping_every_ticks {
            return;
        }
        self.ticks_since_housekeeping = 0;
        let status = self.parts.raft.status();
        if status.role != Role::Leader || self.loading || status.transferring_to.is_some() {
            return;
        }
        if self
            .housekeeping_in_flight
            .is_some_and(|index| index > status.last_applied)
        {
            return;
        }
        let now_ms = wall_clock_ms();
        let ops: Vec<kv::Op> = {
            let db = self.parts.db.read().unwrap_or_else(|e| e.into_inner());
            [
                db.active_expiry_op(now_ms, HOUSEKEEPING_MAX_KEYS),
                db.eviction_op(HOUSEKEEPING_MAX_KEYS),
            ]
            .into_iter()
            .flatten()
            .collect()
        };
        for op in ops {
            let command = kv::Command { ts_ms: now_ms, op };
            match self.parts.raft.propose(command.encode()) {
                Ok((index, _)) => self.housekeeping_in_flight = Some(index),
                Err(e) => tracing::debug!(error = %e, "housekeeping proposal refused"),
            }
        }
    }

    /// Reads whose callers gave up (timed out) are forgotten, so the map stays
    /// bounded even when a leader cannot confirm reads for a long time.
    fn forget_abandoned_reads(&mut self) {
        self.pending_reads.retain(|_, reply| !reply.is_closed());
    }

    /// One pass of the Ready contract; see the module docs for the order.
    async fn handle_ready(&mut self) -> Result<(), NodeError> {
        let mut ready = self.parts.raft.ready();
        // Before any message leaves: a transfer's TimeoutNow must not be sent
        // while direct reads still trust the lease it ends.
        self.publish_lease();
        // 0. An installed snapshot replaces the map and the stored log first.
        if let Some(meta) = ready.snapshot.clone() {
            self.install_snapshot(meta).await?;
        }

        // A leader's messages (AppendEntries, heartbeats) do not depend on its
        // own log being durable: it counts itself toward a commit only for
        // entries acknowledged by `advance` (raft/mod.rs), so it sends them
        // while it writes (thesis §10.2.1). Not when its term or vote changed
        // in this Ready: those must be durable before anything leaves.
        let send_early = self.parts.raft.status().role == Role::Leader
            && !term_or_vote_changed(self.synced_hard_state, ready.hard_state);
        if send_early {
            self.send_messages(&mut ready);
        }
        // 1. Persist before anything that depends on it leaves the node.
        if must_sync(self.synced_hard_state, ready.hard_state, &ready.entries) {
            self.persist(&mut ready).await?;
        } else if let Some(hard_state) = ready.hard_state {
            // Only the commit index moved: nothing sent depends on it being
            // durable, so it rides along with the next fsync (a restart that
            // misses it replays less and relearns the rest from the leader).
            self.wal_mut().set_hard_state(hard_state)?;
        }
        if self.parts.early_ack {
            self.ack_early(&ready.entries);
        }
        // 2. Send.
        self.send_messages(&mut ready);
        // 3. Apply.
        if !ready.committed_entries.is_empty() {
            self.apply(&ready.committed_entries)?;
            self.maybe_snapshot();
        }
        // 4. Reads confirmed by a quorum; callers wait for apply >= index.
        if !ready.read_states.is_empty() {
            // Expiry "now" for these reads: this leader's clock, never behind the
            // replicated now (ARCHITECTURE.md, the client path, step 4).
            let replicated_now_ms = self
                .parts
                .db
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .now_ms();
            let now_ms = wall_clock_ms().max(replicated_now_ms);
            for read in &ready.read_states {
                if let Some(reply) = self.pending_reads.remove(&read.ctx) {
                    let _ = reply.send(LocalRead::Index {
                        index: read.index,
                        now_ms,
                    });
                }
            }
        }
        self.parts.raft.advance(ready);
        Ok(())
    }

    /// Hands the Ready's messages to the transport (an InstallSnapshot waits
    /// for its data to be streamed first).
    fn send_messages(&mut self, ready: &mut Ready) {
        for envelope in ready.messages.drain(..) {
            if let Message::InstallSnapshot { meta, .. } = &envelope.message {
                let meta = meta.clone();
                self.stream_snapshot(envelope, meta);
            } else {
                self.parts.transport.send(envelope);
            }
        }
    }

    /// Runs `op` on the WAL on a blocking thread; the driver waits for it.
    async fn with_wal<T: Send + 'static>(
        &mut self,
        op: impl FnOnce(&mut Wal) -> T + Send + 'static,
    ) -> Result<T, NodeError> {
        let mut wal = self.wal.take().expect(
            "the WAL is only absent while a blocking WAL task runs, and they never overlap",
        );
        let joined = tokio::task::spawn_blocking(move || {
            let out = op(&mut wal);
            (wal, out)
        })
        .await;
        let (wal, out) = joined.map_err(|e| NodeError::StorageTask(e.to_string()))?;
        self.wal = Some(wal);
        Ok(out)
    }

    /// Writes the Ready's entries and hard state and fsyncs, on a blocking thread.
    async fn persist(&mut self, ready: &mut Ready) -> Result<(), NodeError> {
        let synced = ready.hard_state.or(self.synced_hard_state);
        let entries = std::mem::take(&mut ready.entries);
        let hard_state = ready.hard_state;
        let (entries, result, elapsed) = self
            .with_wal(move |wal| {
                let started = std::time::Instant::now();
                let result = (|| {
                    if !entries.is_empty() {
                        wal.append(&entries)?;
                    }
                    if let Some(hard_state) = hard_state {
                        wal.set_hard_state(hard_state)?;
                    }
                    wal.sync()
                })();
                (entries, result, started.elapsed())
            })
            .await?;
        ready.entries = entries;
        self.parts.metrics.wal_fsync.record(elapsed.as_secs_f64());
        result.map_err(NodeError::Store)?;
        self.synced_hard_state = synced;
        Ok(())
    }

    /// Step 0 of a Ready carrying `meta` (snapshot.rs): the map becomes the
    /// snapshot's, the WAL restarts at it with the suffix the core kept.
    async fn install_snapshot(&mut self, meta: SnapshotMeta) -> Result<(), NodeError> {
        let store = self.parts.snapshots.clone();
        let kept = self.parts.raft.entries_after_snapshot();
        let install_meta = meta.clone();
        let db = self
            .with_wal(move |wal| snap::install_snapshot(&store, wal, &install_meta, &kept))
            .await??;
        let keys = db.len();
        *self.parts.db.write().unwrap_or_else(|e| e.into_inner()) = db;
        self.parts.metrics.keys.set(keys as f64);
        let index = meta.last_included_index;
        self.applied = (index, meta.last_included_term);
        self.last_snapshot_index = self.last_snapshot_index.max(index);
        self.durable_snapshot_index = self.durable_snapshot_index.max(index);
        // Writes proposed here at covered indexes (as a leader of an older
        // term) cannot be matched to what committed there.
        let covered: Vec<LogIndex> = self
            .pending_writes
            .range(..=index)
            .map(|(i, _)| *i)
            .collect();
        for i in covered {
            if let Some(pending) = self.pending_writes.remove(&i) {
                let _ = pending
                    .reply
                    .send(LocalWrite::Done(Err(RequestError::OutcomeUnknown(
                        "leadership changed; the write may or may not have been applied"
                            .to_string(),
                    ))));
            }
        }
        if self.loading && index >= self.parts.replay_target {
            self.loading = false;
        }
        info!(
            index = index.0,
            term = meta.last_included_term.0,
            keys,
            "snapshot installed"
        );
        Ok(())
    }

    /// After applying: starts a local snapshot when enough entries were
    /// applied since the last one and none is being written.
    fn maybe_snapshot(&mut self) {
        let every = self.parts.snapshot_every_entries;
        let (index, term) = self.applied;
        if every == 0
            || self.snapshot_in_flight
            || index.0.saturating_sub(self.last_snapshot_index.0) < every
        {
            return;
        }
        let meta = snap::local_meta(index, term, &self.parts.voters);
        // The copy is taken now, at exactly `index`; encoding and writing it
        // happen on a blocking thread while the node goes on.
        let chunks = self
            .parts
            .db
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .snapshot_chunks(self.parts.snapshot_chunk_bytes);
        self.snapshot_in_flight = true;
        self.last_snapshot_index = index;
        let store = self.parts.snapshots.clone();
        let events = self.storage_events_tx.clone();
        tokio::task::spawn_blocking(move || {
            let result = snap::write_snapshot(&store, meta, chunks);
            let _ = events.send(StorageEvent::SnapshotTaken(result));
        });
    }

    /// Leader: streams the snapshot to the follower before the message goes,
    /// one stream per follower; a repeat while one runs is dropped.
    fn stream_snapshot(&mut self, envelope: Envelope, meta: SnapshotMeta) {
        let peer = envelope.to;
        if self
            .streams
            .get(&peer)
            .is_some_and(|running| snap::same_snapshot(running, &meta))
        {
            return;
        }
        self.streams.insert(peer, meta.clone());
        let store = self.parts.snapshots.clone();
        let transport = self.parts.transport.clone();
        let chunk_bytes = self.parts.snapshot_chunk_bytes;
        let events = self.storage_events_tx.clone();
        tokio::spawn(async move {
            snap::stream_snapshot(store, transport, envelope, meta, chunk_bytes).await;
            let _ = events.send(StorageEvent::StreamEnded { peer });
        });
    }

    async fn storage_event(&mut self, event: StorageEvent) -> Result<(), NodeError> {
        match event {
            StorageEvent::StreamEnded { peer } => {
                self.streams.remove(&peer);
                Ok(())
            }
            StorageEvent::SnapshotTaken(result) => {
                self.snapshot_in_flight = false;
                // Like a failed WAL fsync, a failed snapshot write stops the
                // node (etcd does the same): the disk cannot be trusted.
                let taken = result?;
                info!(
                    index = taken.meta.last_included_index.0,
                    payload_bytes = taken.payload_bytes,
                    elapsed_ms = taken.elapsed.as_millis() as u64,
                    compact_through = taken.floor.last_included_index.0,
                    "snapshot taken"
                );
                self.durable_snapshot_index = self
                    .durable_snapshot_index
                    .max(taken.meta.last_included_index);
                let through = taken.floor.last_included_index;
                self.parts.raft.compact(taken.floor);
                let deleted = self.with_wal(move |wal| wal.compact(through)).await??;
                if deleted > 0 {
                    info!(through = through.0, segments = deleted, "WAL compacted");
                }
                Ok(())
            }
        }
    }

    fn wal_mut(&mut self) -> &mut Wal {
        self.wal
            .as_mut()
            .expect("the WAL is only absent while a blocking WAL task runs, and they never overlap")
    }

    /// The deliberately unsafe `EarlyAck` test fault: acknowledge writes the
    /// moment the leader has persisted them, before any majority has.
    fn ack_early(&mut self, entries: &[Entry]) {
        for entry in entries {
            if let Some(pending) = self.pending_writes.remove(&entry.index) {
                let _ = pending.reply.send(LocalWrite::Done(Ok(kv::Output::Ok)));
            }
        }
    }

    fn apply(&mut self, entries: &[Entry]) -> Result<(), NodeError> {
        let mut outputs = Vec::with_capacity(entries.len());
        {
            let mut db = self.parts.db.write().unwrap_or_else(|e| e.into_inner());
            for entry in entries {
                let output = match entry.kind {
                    EntryKind::Noop => None,
                    EntryKind::Normal => {
                        let command = kv::Command::decode(&entry.data).map_err(|source| {
                            NodeError::Decode {
                                index: entry.index,
                                source,
                            }
                        })?;
                        Some(db.apply(&command))
                    }
                };
                outputs.push(output);
            }
            self.parts.metrics.keys.set(db.len() as f64);
        }
        for (entry, output) in entries.iter().zip(outputs) {
            if entry.kind == EntryKind::Normal {
                self.parts.metrics.proposals_committed.increment(1);
            }
            // A proposal at this index is answered now: with the output if the entry
            // applied is the one proposed (same term), else it was overwritten by a
            // new leader and will never apply.
            if let Some(pending) = self.pending_writes.remove(&entry.index) {
                let outcome = match output {
                    Some(output) if pending.term == entry.term => Ok(output),
                    _ => Err(RequestError::TryAgain(
                        "leadership changed before the write committed; it was not applied"
                            .to_string(),
                    )),
                };
                let _ = pending.reply.send(LocalWrite::Done(outcome));
            }
        }
        if let Some(last) = entries.last() {
            self.applied = (last.index, last.term);
            if self.loading && last.index >= self.parts.replay_target {
                self.loading = false;
                info!(applied = last.index.0, "write-ahead log replayed");
            }
        }
        Ok(())
    }

    /// Reads pending on a leader that lost its role can no longer be confirmed;
    /// their callers retry against the new leader.
    fn notice_role_change(&mut self) {
        let status = self.parts.raft.status();
        if self.last_role == Role::Leader && status.role != Role::Leader {
            for (_, reply) in self.pending_reads.drain() {
                let _ = reply.send(LocalRead::NotLeader(status.leader));
            }
        }
        if status.role != self.last_role {
            info!(term = status.term.0, role = ?status.role, "role changed");
        }
        self.last_role = status.role;
        if status.leader.is_some() && status.leader != self.last_leader {
            self.leader_changes += 1;
            self.parts.metrics.leader_changes.increment(1);
            info!(
                term = status.term.0,
                leader = status.leader.map(|l| l.0),
                "leader changed"
            );
        }
        if status.leader.is_some() {
            self.last_leader = status.leader;
        }
    }

    /// Publishes the core's lease as a deadline for direct reads (`lease.rs`),
    /// or revokes it: only a leader that has applied an entry of its own term
    /// grants one.
    fn publish_lease(&self) {
        let status = self.parts.raft.status();
        let remaining = match self.parts.raft.lease_remaining_ticks() {
            Some(ticks) if status.role == Role::Leader && self.applied.1 == status.term => ticks,
            _ => {
                self.parts.lease.revoke();
                return;
            }
        };
        // The tick count stands for `ticked_until`; the lease ends when the
        // count reaches `remaining` more, which is no earlier than this.
        let ticks = u32::try_from(remaining).unwrap_or(u32::MAX);
        match self
            .ticked_until
            .checked_add(self.parts.tick.saturating_mul(ticks))
        {
            Some(until) => self.parts.lease.grant(until),
            None => self.parts.lease.revoke(),
        }
    }

    fn publish_status(&mut self) {
        let status = self.parts.raft.status();
        let next = NodeStatus {
            id: status.id,
            role: status.role,
            term: status.term,
            leader: status.leader,
            leader_resp_addr: status
                .leader
                .and_then(|l| self.parts.resp_addrs.get(&l))
                .map(|a| a.to_string()),
            commit_index: status.commit_index,
            last_applied: status.last_applied,
            last_log_index: status.last_log_index,
            loading: self.loading,
            leader_changes: self.leader_changes,
            snapshot_index: self.durable_snapshot_index,
        };
        let metrics = &self.parts.metrics;
        metrics.role.set(match status.role {
            Role::Follower => 0.0,
            Role::Candidate => 1.0,
            Role::Leader => 2.0,
        });
        metrics.term.set(status.term.0 as f64);
        metrics.commit_index.set(status.commit_index.0 as f64);
        metrics.applied_index.set(status.last_applied.0 as f64);
        self.parts.status.send_if_modified(|current| {
            if *current == next {
                false
            } else {
                *current = next;
                true
            }
        });
    }
}

/// Whether a Ready needs an fsync before its messages leave: new entries, or a
/// new term or vote (a vote or an acknowledgement depends on them, §5.1 and
/// Figure 2 "persistent state ... updated on stable storage before responding").
/// A change of the commit index alone does not (etcd's `MustSync` rule).
fn must_sync(synced: Option<HardState>, next: Option<HardState>, entries: &[Entry]) -> bool {
    if !entries.is_empty() {
        return true;
    }
    term_or_vote_changed(synced, next)
}

/// Whether `next` changes the term or vote of the last synced hard state (or
/// nothing was synced yet).
fn term_or_vote_changed(synced: Option<HardState>, next: Option<HardState>) -> bool {
    match (synced, next) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(old), Some(new)) => old.term != new.term || old.voted_for != new.voted_for,
    }
}

/// Milliseconds since the Unix epoch; a clock before 1970 reads as 0.
pub(super) fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hs(term: u64, voted_for: Option<u64>, commit: u64) -> HardState {
        HardState {
            term: Term(term),
            voted_for: voted_for.map(NodeId),
            commit_index: LogIndex(commit),
        }
    }

    /// A vote, a term or entries must be durable before anything is sent; a
    /// commit index that moved alone need not be.
    #[test]
    fn fsync_is_needed_for_entries_term_and_vote_but_not_commit_alone() {
        let entry = Entry {
            term: Term(1),
            index: LogIndex(1),
            kind: EntryKind::Noop,
            data: Default::default(),
        };
        assert!(must_sync(
            Some(hs(1, None, 0)),
            None,
            std::slice::from_ref(&entry)
        ));
        assert!(must_sync(None, Some(hs(0, None, 0)), &[]));
        assert!(must_sync(Some(hs(1, None, 0)), Some(hs(2, None, 0)), &[]));
        assert!(must_sync(
            Some(hs(2, None, 0)),
            Some(hs(2, Some(3), 0)),
            &[]
        ));
        assert!(!must_sync(
            Some(hs(2, Some(3), 4)),
            Some(hs(2, Some(3), 9)),
            &[]
        ));
        assert!(!must_sync(Some(hs(2, Some(3), 4)), None, &[]));
    }
}
