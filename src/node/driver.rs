//! The driver task: the only owner of the Raft core and the WAL.
//!
//! # Ordering (the persistence contract of `raft/mod.rs`, implemented here once)
//!
//! ```text
//! ready = raft.ready()
//!   1. WAL: queue ready.entries and ready.hard_state         (blocking thread)
//!   2. once they, and everything queued before, are fsynced:
//!        transport: send ready.messages; raft.advance (entries persisted)
//!   3. kv: apply ready.committed_entries in order; answer their clients
//!   4. answer ready.read_states (callers then wait for apply >= index)
//! ```
//!
//! The driver does not wait for the fsync: it queues the Ready's WAL work and
//! keeps the Ready's messages in `unsynced` until a batch covering them is
//! durable, and meanwhile goes on stepping messages and proposals. One
//! blocking task at a time writes everything queued and fsyncs once (group
//! commit); the Readies it covered then finish step 2 in order, and a Ready
//! with no WAL work of its own still waits for those before it. So a follower
//! takes the next AppendEntries while it fsyncs the last, and a leader
//! counts acknowledgements and commits while its own write runs.
//!
//! Step 2 after step 1 is what makes a vote or an append acknowledgement safe:
//! the term, vote and entries it depends on are on disk first. A failed write or
//! fsync stops the driver with an error (the page cache can no longer be
//! trusted; never retry an fsync).
//!
//! Step 3 does not wait for step 1: committed entries are on a majority's
//! disks already (the core counts this node only for entries `advance`
//! confirmed). A crash before this node's own copy is durable loses only that
//! copy, which the leader sends again; a snapshot taken meanwhile is itself
//! durable storage of what it covers.
//!
//! The one exception to "1 before 2": a leader whose term and vote did not
//! change in this Ready sends its messages at once (thesis §10.2.1). Its
//! AppendEntries and heartbeats acknowledge nothing.
//!
//! Before step 1, a Ready that carries an installed snapshot replaces the map
//! and resets the WAL to it (`snapshot.rs`), after every queued write ended.
//! After step 3, once `raft.snapshot_every_entries` entries were applied since
//! the last snapshot, the map is copied (a clone of its structure, values
//! shared) and written to a snapshot file on a blocking thread while the node
//! keeps serving; when it is durable the core and the WAL are compacted
//! through the older retained snapshot. An outgoing InstallSnapshot message is
//! held back while the snapshot's data is streamed to its follower, and sent
//! after it.

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
    /// Clients blocked on keys, woken with the keys each batch touched.
    pub key_waits: Arc<super::wakeups::KeyWaits>,
    /// Pub/Sub connections, handed the frames each batch queued.
    pub pubsub: Arc<super::pubsub::PubSubHub>,
    /// Tracking clients, handed the keys each entry changed.
    pub tracking: Arc<super::tracking::TrackingHub>,
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
    /// Refused peer input: counted, logged rate-limited.
    pub refusals: Arc<std::sync::Mutex<super::validate::RefusalLog>>,
}

/// Results of background storage work, reported back to the driver.
enum StorageEvent {
    /// A local snapshot was written (or failed).
    SnapshotTaken(Result<Taken, crate::store::SnapshotError>),
    /// A stream of a snapshot to a follower ended.
    StreamEnded { peer: NodeId },
}

/// Entries and hard state of one Ready, for the WAL.
struct PersistJob {
    id: u64,
    entries: Vec<Entry>,
    hard_state: Option<HardState>,
    /// Needs an fsync (new entries, term or vote); a commit index alone
    /// rides along with the next one.
    sync: bool,
}

/// What a WAL batch reports back: the WAL, the result, how long the write
/// and fsync took, and the last job it covered.
type WalBatchDone = (Wal, Result<(), crate::store::WalError>, Duration, u64);

/// The part of a Ready that waits until its WAL work (and all before it)
/// is durable.
struct Unsynced {
    /// Its job (`None`: it had none and only waits for the ones before it).
    job: Option<u64>,
    /// Its last entry, reported to the core as persisted.
    last_entry: Option<Entry>,
    /// Messages that depend on it (acks, votes).
    messages: Vec<Envelope>,
    /// [`super::TestFault::EarlyAck`] only: its entries.
    entries: Vec<Entry>,
}

struct PendingWrite {
    term: Term,
    reply: oneshot::Sender<LocalWrite>,
}

pub(super) struct Driver {
    parts: DriverParts,
    /// `None` only while a blocking WAL task owns it (`wal_task`).
    wal: Option<Wal>,
    /// The WAL batch being written and fsynced on a blocking thread.
    wal_task: Option<tokio::task::JoinHandle<WalBatchDone>>,
    /// WAL work waiting for the running batch; it all goes in the next one.
    wal_queue: Vec<PersistJob>,
    /// Id of the last job queued (ids count up from 1).
    last_job: u64,
    /// Readies whose WAL work is not durable yet, oldest first, with what
    /// must wait for it.
    unsynced: std::collections::VecDeque<Unsynced>,
    pending_writes: BTreeMap<LogIndex, PendingWrite>,
    pending_reads: HashMap<u64, oneshot::Sender<LocalRead>>,
    next_read_ctx: u64,
    loading: bool,
    leader_changes: u64,
    last_leader: Option<NodeId>,
    last_role: Role,
    /// The last hard state handed to the WAL, written or queued (`None`
    /// before the first).
    queued_hard_state: Option<HardState>,
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
            wal_task: None,
            wal_queue: Vec::new(),
            last_job: 0,
            unsynced: std::collections::VecDeque::new(),
            pending_writes: BTreeMap::new(),
            pending_reads: HashMap::new(),
            next_read_ctx: 1,
            loading,
            leader_changes: 0,
            last_leader: None,
            last_role: Role::Follower,
            queued_hard_state: None,
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
        // A batch still writing owns the WAL (and its data-dir lock): let it
        // end, so the lock is free once this returns.
        if let Some(task) = self.wal_task.take() {
            let _ = task.await;
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
                joined = wal_batch(&mut self.wal_task) => {
                    self.wal_task = None;
                    self.wal_batch_done(joined)?;
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
        // The payloads first (the core never looks into them), then Raft's
        // own rules (`raft/validate.rs`); a refused message changes nothing.
        let refused = match super::validate::check_entry_payloads(&envelope) {
            Err(refusal) => Some((refusal.kind(), refusal.to_string())),
            Ok(()) => match self.parts.raft.step(envelope) {
                Ok(()) => None,
                Err(crate::raft::Error::Refused { refusal, .. }) => {
                    Some((refusal.kind(), refusal.to_string()))
                }
                Err(e) => Some(("other", e.to_string())),
            },
        };
        if let Some((kind, reason)) = refused {
            self.parts
                .refusals
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .refused(std::time::Instant::now(), from, kind, &reason);
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
            && !term_or_vote_changed(self.queued_hard_state, ready.hard_state);
        if send_early {
            self.send_messages(&mut ready.messages);
        }
        // 1. Hand entries and hard state to the WAL; what depends on them
        //    (step 2) waits in `unsynced` until they are durable.
        let sync = must_sync(self.queued_hard_state, ready.hard_state, &ready.entries);
        let entries = std::mem::take(&mut ready.entries);
        let mut record = Unsynced {
            job: None,
            last_entry: entries.last().cloned(),
            messages: std::mem::take(&mut ready.messages),
            entries: if self.parts.early_ack {
                entries.clone()
            } else {
                Vec::new()
            },
        };
        if let Some(hard_state) = ready.hard_state {
            self.queued_hard_state = Some(hard_state);
        }
        if sync || (ready.hard_state.is_some() && self.wal.is_none()) {
            // Entries imply `sync`; a commit index alone is queued only
            // because a batch holds the WAL, and nothing waits for it.
            self.last_job += 1;
            record.job = sync.then_some(self.last_job);
            self.wal_queue.push(PersistJob {
                id: self.last_job,
                entries,
                hard_state: ready.hard_state,
                sync,
            });
        } else if let Some(hard_state) = ready.hard_state {
            // Only the commit index moved: nothing sent depends on it being
            // durable, so it rides along with the next fsync (a restart that
            // misses it replays less and relearns the rest from the leader).
            self.wal_mut().set_hard_state(hard_state)?;
        }
        if record.job.is_none() && self.unsynced.is_empty() {
            // 2. Nothing it depends on is still being written.
            self.finish_unsynced(record);
        } else {
            self.unsynced.push_back(record);
        }
        self.start_wal_batch();
        // 3. Apply, without waiting for step 1 (module docs).
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
        Ok(())
    }

    /// Step 2 for one Ready whose WAL work, and all before it, is durable:
    /// its messages leave and the core learns its entries are persisted.
    fn finish_unsynced(&mut self, mut record: Unsynced) {
        if self.parts.early_ack {
            self.ack_early(&record.entries);
        }
        self.send_messages(&mut record.messages);
        if let Some(last) = record.last_entry {
            self.parts.raft.advance(Ready {
                entries: vec![last],
                ..Ready::default()
            });
        }
    }

    /// Starts writing and fsyncing everything queued, as one batch on a
    /// blocking thread (group commit), unless a batch is running or nothing
    /// queued needs an fsync.
    fn start_wal_batch(&mut self) {
        if self.wal_task.is_some() || !self.wal_queue.iter().any(|job| job.sync) {
            return;
        }
        let Some(mut wal) = self.wal.take() else {
            return;
        };
        let jobs = std::mem::take(&mut self.wal_queue);
        let through = jobs.last().map_or(0, |job| job.id);
        self.wal_task = Some(tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let result = (|| {
                for job in &jobs {
                    if !job.entries.is_empty() {
                        wal.append(&job.entries)?;
                    }
                    if let Some(hard_state) = job.hard_state {
                        wal.set_hard_state(hard_state)?;
                    }
                }
                wal.sync()
            })();
            (wal, result, started.elapsed(), through)
        }));
    }

    /// A WAL batch ended: on success, every Ready it covered (and those
    /// without WAL work queued behind them) finishes step 2, in order, and
    /// the next batch starts. A failed write or fsync stops the node.
    fn wal_batch_done(
        &mut self,
        joined: Result<WalBatchDone, tokio::task::JoinError>,
    ) -> Result<(), NodeError> {
        let (wal, result, elapsed, through) =
            joined.map_err(|e| NodeError::StorageTask(e.to_string()))?;
        self.wal = Some(wal);
        self.parts.metrics.wal_fsync.record(elapsed.as_secs_f64());
        result.map_err(NodeError::Store)?;
        while self
            .unsynced
            .front()
            .is_some_and(|record| record.job.is_none_or(|id| id <= through))
        {
            if let Some(record) = self.unsynced.pop_front() {
                self.finish_unsynced(record);
            }
        }
        if !self.wal_queue.iter().any(|job| job.sync) {
            // Only commit indexes queued meanwhile: buffer them for the next fsync.
            for job in std::mem::take(&mut self.wal_queue) {
                if let Some(hard_state) = job.hard_state {
                    self.wal_mut().set_hard_state(hard_state)?;
                }
            }
        }
        self.start_wal_batch();
        Ok(())
    }

    /// Waits until no WAL batch runs and nothing waits to be written.
    async fn drain_wal(&mut self) -> Result<(), NodeError> {
        while let Some(task) = self.wal_task.take() {
            let joined = task.await;
            self.wal_batch_done(joined)?;
        }
        Ok(())
    }

    /// Hands messages to the transport (an InstallSnapshot waits for its data
    /// to be streamed first).
    fn send_messages(&mut self, messages: &mut Vec<Envelope>) {
        for envelope in messages.drain(..) {
            if let Message::InstallSnapshot { meta, .. } = &envelope.message {
                let meta = meta.clone();
                self.stream_snapshot(envelope, meta);
            } else {
                self.parts.transport.send(envelope);
            }
        }
    }

    /// Runs `op` on the WAL on a blocking thread once every queued WAL write
    /// is durable; the driver waits for it.
    async fn with_wal<T: Send + 'static>(
        &mut self,
        op: impl FnOnce(&mut Wal) -> T + Send + 'static,
    ) -> Result<T, NodeError> {
        self.drain_wal().await?;
        let mut wal = self.wal.take().ok_or_else(|| {
            NodeError::StorageTask("the WAL is held by a batch that never ended".to_string())
        })?;
        let joined = tokio::task::spawn_blocking(move || {
            let out = op(&mut wal);
            (wal, out)
        })
        .await;
        let (wal, out) = joined.map_err(|e| NodeError::StorageTask(e.to_string()))?;
        self.wal = Some(wal);
        Ok(out)
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
        {
            let mut current = self.parts.db.write().unwrap_or_else(|e| e.into_inner());
            let mut db = db;
            // The node's script monitor is not state: it stays.
            db.script_watch = current.script_watch.clone();
            *current = db;
        }
        self.parts.key_waits.touched_all();
        // Any key may have changed: as after a flush, every cache is stale.
        self.parts
            .tracking
            .invalidate(&[(None, super::tracking::Change::Flush)]);
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
                // Entries applied while this one was written may already make
                // the next one due; it is otherwise only checked after an
                // apply, which an idle node never makes.
                self.maybe_snapshot();
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
        let mut changes = Vec::new();
        let (mut touched, frames) = {
            let mut db = self.parts.db.write().unwrap_or_else(|e| e.into_inner());
            // Read under the write lock: a client that starts tracking and
            // then reads (under the read lock) is either seen here or reads
            // after this batch (`node/tracking.rs`).
            let tracking = self.parts.tracking.active();
            db.track_touched(self.parts.key_waits.any() || tracking);
            let (node, incarnation) = self.parts.pubsub.local();
            db.pubsub.set_local(node, incarnation);
            for entry in entries {
                let output = match entry.kind {
                    EntryKind::Noop => None,
                    EntryKind::Normal => {
                        let command =
                            kv::Command::decode_shared(&entry.data).map_err(|source| {
                                NodeError::Decode {
                                    index: entry.index,
                                    source,
                                }
                            })?;
                        let output = db.apply(&command);
                        if tracking {
                            let writer = command.op.writer(node, incarnation);
                            tracked_changes(&mut changes, writer, db.take_touches());
                        }
                        Some(output)
                    }
                };
                outputs.push(output);
            }
            self.parts.metrics.keys.set(db.len() as f64);
            (db.take_touched(), db.pubsub.take_frames())
        };
        // After the lock is released: a woken client sees the writes, and a
        // read remembered under the read lock before them is invalidated.
        if !changes.is_empty() {
            touched.extend(changes.iter().filter_map(|(_, _, woken)| woken.clone()));
            let changes: Vec<_> = changes.into_iter().map(|(w, c, _)| (w, c)).collect();
            self.parts.tracking.invalidate(&changes);
        }
        self.parts.key_waits.touched(&touched);
        // Before any write of the batch is answered: an acknowledged
        // (un)subscribe finds every frame of the entries before it queued.
        self.parts.pubsub.deliver(frames);
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
            // Filled in below, from the current status while the leader stays.
            leader_resp_addr: None,
            commit_index: status.commit_index,
            last_applied: status.last_applied,
            last_log_index: status.last_log_index,
            loading: self.loading,
            leader_changes: self.leader_changes,
            snapshot_index: self.durable_snapshot_index,
            voters: self.parts.raft.voter_count(),
            // Filled in below, without allocating unless it changed.
            followers: Vec::new(),
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
        // This runs on every turn of the loop: the leader's address is looked
        // up and formatted only when the leader changes, never per request.
        let resp_addrs = &self.parts.resp_addrs;
        let raft = &self.parts.raft;
        let tick_ms = u64::try_from(self.parts.tick.as_millis()).unwrap_or(u64::MAX);
        // Lag changes in whole seconds, so the status changes at most once a
        // second per follower for it.
        let followers = || {
            raft.follower_progress().map(|(id, match_index, ticks)| {
                (id, match_index, ticks.saturating_mul(tick_ms) / 1000)
            })
        };
        self.parts.status.send_if_modified(|current| {
            let mut matches = std::mem::take(&mut current.followers);
            let matches_changed = !matches
                .iter()
                .map(|f| (f.id, f.match_index, f.last_heard_secs))
                .eq(followers());
            if matches_changed {
                matches.clear();
                matches.extend(followers().map(|(id, match_index, last_heard_secs)| {
                    crate::node::FollowerStatus {
                        id,
                        match_index,
                        last_heard_secs,
                        resp_addr: resp_addrs.get(&id).copied(),
                    }
                }));
            }
            let address = if current.leader == next.leader {
                current.leader_resp_addr.take()
            } else {
                next.leader
                    .and_then(|l| resp_addrs.get(&l))
                    .map(|a| a.to_string())
            };
            let changed = *current != next || matches_changed;
            *current = next;
            current.leader_resp_addr = address;
            current.followers = matches;
            changed
        });
    }
}

/// The running WAL batch's outcome; pending forever when none runs.
async fn wal_batch(
    task: &mut Option<tokio::task::JoinHandle<WalBatchDone>>,
) -> Result<WalBatchDone, tokio::task::JoinError> {
    match task {
        Some(task) => task.await,
        None => std::future::pending().await,
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

/// One change for the tracking hub: the writer, the change, and the key it
/// wakes blocked clients on (created or changed keys only).
type TrackedChange = (
    Option<u64>,
    super::tracking::Change,
    Option<(u8, bytes::Bytes)>,
);

/// Appends one entry's recorded changes; the flushes of one FLUSHALL (one
/// per database) are one change, as Redis sends one null invalidation per
/// FLUSHALL.
fn tracked_changes(into: &mut Vec<TrackedChange>, writer: Option<u64>, touches: Vec<kv::Touch>) {
    use super::tracking::Change;
    let mut flushed = false;
    for touch in touches {
        let change = match touch {
            kv::Touch::Changed(db, key) => (writer, Change::Key(key.clone()), Some((db, key))),
            kv::Touch::Removed(_, key) => (writer, Change::Key(key), None),
            kv::Touch::Flushed if flushed => continue,
            kv::Touch::Flushed => {
                flushed = true;
                (writer, Change::Flush, None)
            }
        };
        into.push(change);
    }
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
