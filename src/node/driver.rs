//! The driver task: the tokio shell around the node core (`core.rs`).
//!
//! The core decides; the driver does the I/O. It owns the WAL (written and
//! fsynced on a blocking thread), the transport, the map, snapshot files and
//! snapshot streams, the clock and the client reply channels, feeds the core
//! every input (peer messages, client requests, ticks of the monotonic clock,
//! storage completions) and carries out each `CoreReady` in the order
//! `core.rs` documents:
//!
//! ```text
//! r = core.ready()
//!   a. publish r.lease                      (before anything leaves)
//!   b. install r.snapshot                   (after every queued WAL write ended)
//!   c. send r.send                          (what may leave now)
//!   d. queue r.persist for the WAL          (blocking thread, group commit)
//!   e. apply r.apply; core.applied(..)      (answers their writers)
//!   f. answer r.reads
//! WAL batch durable through job J:
//!   core.on_persisted(J) → send what it held back (acks, votes)
//! ```
//!
//! The driver does not wait for the fsync: one blocking task at a time writes
//! every queued job and fsyncs once (group commit), and meanwhile the loop
//! goes on stepping messages and proposals and handing out Readies. So a
//! follower takes the next AppendEntries while it fsyncs the last, and a
//! leader counts acknowledgements and commits while its own write runs. A
//! failed write or fsync stops the driver with an error (the page cache can
//! no longer be trusted; never retry an fsync). A job that carries only a
//! commit index needs no fsync: it is written without one and rides along
//! with the next.
//!
//! After step e, once the core says a snapshot is due (`raft.snapshot_every_entries`
//! entries applied since the last, carrying `raft.snapshot_log_growth_percent`
//! of its bytes), the map is copied (O(1) for the keyspace's persistent trees,
//! `kv::Keyspace`) and written to a snapshot file on a blocking thread while
//! the node keeps serving; when it is durable the core's log is compacted
//! through it and the WAL through the older retained snapshot (the
//! fallback should the newest be damaged), and the next snapshot
//! starts at once if enough entries were applied meanwhile. An outgoing InstallSnapshot
//! message is held back while the snapshot's data is streamed to its
//! follower, and sent after it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info};

use super::answers::WriteReply;
use super::core::{self, CoreConfig, NodeCore, PersistJob};
use super::snapshot::{self as snap, SnapshotReceiver, Taken};
use super::stall::{Stall, StallLog, TurnCosts};
use super::{LocalRead, NodeError, NodeRequest, NodeStatus};
use crate::kv;
use crate::metrics::Metrics;
use crate::raft::{Entry, EntryKind, Envelope, LogIndex, NodeId, Raft, Role, SnapshotMeta, Term};
use crate::store::{LogStore, SnapshotStore, Wal};
use crate::transport::Transport;

/// Inputs handled per wake-up before the driver turns to Ready, so a flood of one
/// kind cannot starve the others.
const MAX_INPUTS_PER_TURN: usize = 4096;
/// How often the leader looks for expired keys and eviction victims (Redis runs
/// its active expiry cycle 10 times a second too).
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(100);
/// At most one line about driver stalls per this long (`stall.rs`).
const STALL_LOG_INTERVAL: Duration = Duration::from_secs(5);
/// Most keys one housekeeping entry deletes. A round that found this many
/// (more may be due) is followed by the next one at the next tick, once its
/// entry applied, instead of after [`HOUSEKEEPING_INTERVAL`]: with the
/// default 10 ms tick up to 20,000 keys a second expire or are evicted,
/// where one round per interval capped it at 2,000, below the rate a
/// cache's writes can give keys a TTL (Redis's active expiry likewise
/// repeats while a sample finds many keys expired).
const HOUSEKEEPING_MAX_KEYS: usize = 200;

pub(super) struct DriverParts {
    pub db: Arc<RwLock<kv::Db>>,
    pub transport: Transport,
    pub requests: mpsc::Receiver<NodeRequest>,
    pub inbound: mpsc::Receiver<Envelope>,
    pub status: watch::Sender<NodeStatus>,
    pub shutdown: watch::Receiver<bool>,
    pub metrics: Metrics,
    /// The membership in effect, published for the rest of the node.
    pub members: Arc<super::members::MemberTable>,
    /// Peers to answer while this node is not a member (`peer_addrs`).
    pub fallback_peers: Vec<(NodeId, std::net::SocketAddr)>,
    pub replay_target: LogIndex,
    pub tick: Duration,
    /// A third of the minimum election timeout: a driver stall this long is
    /// counted and logged (`stall.rs`).
    pub stall_threshold: Duration,
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
    /// `raft.snapshot_log_growth_percent`.
    pub snapshot_log_growth_percent: u64,
    /// `raft.snapshot_chunk_bytes`.
    pub snapshot_chunk_bytes: usize,
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
    /// A stream of a snapshot to a follower ended; `ok`: all of it went.
    StreamEnded { peer: NodeId, ok: bool },
}

/// What woke the driver.
enum Input {
    /// The shutdown signal changed (`true`: its sender is gone).
    Shutdown(bool),
    /// The running WAL batch ended.
    Wal(Box<Result<WalBatchDone, tokio::task::JoinError>>),
    /// The running WAL compaction ended.
    Compacted(Result<Result<usize, crate::store::WalError>, tokio::task::JoinError>),
    /// The ticker.
    Tick,
    /// A client request (more may be drained in the same turn).
    Request(NodeRequest),
    /// Background storage work ended.
    Storage(StorageEvent),
    /// A peer message (more may be drained in the same turn).
    Peer(Envelope),
}

/// What a WAL batch reports back: the WAL, the result, how long the write
/// and fsync took, and the last job it covered.
type WalBatchDone = (Wal, Result<(), crate::store::WalError>, Duration, u64);

/// The core with the shell's reply handles.
type Core = NodeCore<WriteReply, oneshot::Sender<LocalRead>>;

pub(super) struct Driver {
    parts: DriverParts,
    /// Every decision (`core.rs`); the driver only carries them out.
    core: Core,
    /// The origin of the core's clock (`Instant` time since it).
    origin: Instant,
    /// `None` only while a blocking WAL task owns it (`wal_task`).
    wal: Option<Wal>,
    /// The WAL batch being written and fsynced on a blocking thread.
    wal_task: Option<tokio::task::JoinHandle<WalBatchDone>>,
    /// WAL work waiting for the running batch; it all goes in the next one.
    wal_queue: Vec<PersistJob>,
    /// Old WAL segments being deleted on a blocking thread (one batch at a
    /// time, `Wal::take_compaction`).
    compaction: Option<tokio::task::JoinHandle<Result<usize, crate::store::WalError>>>,
    /// The floor of a compaction still to start (the WAL was busy).
    compact_through: Option<LogIndex>,
    loading: bool,
    leader_changes: u64,
    last_leader: Option<NodeId>,
    /// Ticks between two housekeeping rounds, and since the last one.
    housekeeping_every_ticks: u64,
    ticks_since_housekeeping: u64,
    /// Index of the last housekeeping entry proposed.
    housekeeping_in_flight: Option<LogIndex>,
    /// The last round took as many keys as an entry holds: more may be due.
    housekeeping_backlog: bool,
    /// Index of the newest snapshot on disk, taken or installed (0: none).
    durable_snapshot_index: LogIndex,
    /// Followers a snapshot is being streamed to, and which one.
    streams: HashMap<NodeId, SnapshotMeta>,
    /// Callers of the snapshot being written (`SAVE`), told once it is
    /// durable.
    snapshot_waiters: Vec<oneshot::Sender<()>>,
    /// `BGSAVE SCHEDULE` (or `BGREWRITEAOF`) asked while a snapshot was
    /// written: another starts when it ends.
    snapshot_scheduled: bool,
    /// The members of the last committed membership are peers too, until
    /// the one in effect commits (`set_membership`).
    outgoing_peers: bool,
    storage_events_tx: mpsc::UnboundedSender<StorageEvent>,
    storage_events: mpsc::UnboundedReceiver<StorageEvent>,
    /// Turns and clock delays long enough to look like silence (`stall.rs`).
    stalls: StallLog,
    /// Where the current turn's time went, for a stall's log line.
    costs: TurnCosts,
}

impl Driver {
    pub(super) fn new(raft: Raft, parts: DriverParts, wal: Wal) -> Driver {
        let loading = parts.replay_target > parts.snapshot_index;
        let (storage_events_tx, storage_events) = mpsc::unbounded_channel();
        let core = NodeCore::new(
            raft,
            CoreConfig {
                tick: parts.tick,
                max_catch_up_ticks: parts.max_catch_up_ticks,
                max_pending_proposals: parts.max_pending_proposals,
                early_ack: parts.early_ack,
                snapshot_every_entries: parts.snapshot_every_entries,
                snapshot_log_growth_percent: parts.snapshot_log_growth_percent,
                restored: (parts.snapshot_index, parts.snapshot_term),
                start: Duration::ZERO,
            },
        );
        let mut driver = Driver {
            core,
            origin: Instant::now(),
            durable_snapshot_index: parts.snapshot_index,
            streams: HashMap::new(),
            snapshot_waiters: Vec::new(),
            snapshot_scheduled: false,
            outgoing_peers: false,
            storage_events_tx,
            storage_events,
            wal: Some(wal),
            wal_task: None,
            wal_queue: Vec::new(),
            compaction: None,
            compact_through: None,
            loading,
            leader_changes: 0,
            last_leader: None,
            housekeeping_every_ticks: (HOUSEKEEPING_INTERVAL.as_millis() as u64
                / parts.tick.as_millis().max(1) as u64)
                .max(1),
            ticks_since_housekeeping: 0,
            housekeeping_in_flight: None,
            housekeeping_backlog: false,
            stalls: StallLog::new(parts.stall_threshold, STALL_LOG_INTERVAL),
            costs: TurnCosts::default(),
            parts,
        };
        // Restarted in the middle of a change: the members it replaces are
        // peers until it commits, as on the node that appended it.
        if !driver.core.raft().membership_committed() {
            let membership = driver.core.raft().membership().clone();
            driver.set_membership(membership);
        }
        driver
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
        // Nor may a restart in this process list segments still being deleted.
        if let Some(task) = self.compaction.take() {
            let _ = task.await;
        }
        // Whatever is still waiting gets a definite answer from its sender closing.
        result
    }

    async fn event_loop(&mut self, ticker: &mut tokio::time::Interval) -> Result<(), NodeError> {
        let mut input = "start";
        let mut woke = Instant::now();
        loop {
            // Work left from construction (replay) or the previous turn first.
            while self.core.has_ready() {
                self.handle_ready().await?;
            }
            self.publish_lease(self.core.lease_until());
            self.publish_status();
            // From the wake-up to here: the input, and the Readies it made.
            self.stalls.observe(
                Instant::now(),
                Stall::Turn(input, &self.costs),
                woke.elapsed(),
            );
            let event = tokio::select! {
                biased;
                changed = self.parts.shutdown.changed() => Input::Shutdown(changed.is_err()),
                joined = finished(&mut self.wal_task) => Input::Wal(Box::new(joined)),
                joined = finished(&mut self.compaction) => Input::Compacted(joined),
                _ = ticker.tick() => Input::Tick,
                Some(request) = self.parts.requests.recv() => Input::Request(request),
                Some(event) = self.storage_events.recv() => Input::Storage(event),
                Some(envelope) = self.parts.inbound.recv() => Input::Peer(envelope),
            };
            woke = Instant::now();
            self.costs = TurnCosts::default();
            input = match event {
                Input::Shutdown(closed) => {
                    if closed || *self.parts.shutdown.borrow() {
                        info!("driver stopping");
                        return Ok(());
                    }
                    "shutdown"
                }
                Input::Wal(joined) => {
                    self.wal_task = None;
                    self.wal_batch_done(*joined)?;
                    "wal"
                }
                Input::Compacted(joined) => {
                    self.compaction = None;
                    self.compaction_done(joined)?;
                    "compaction"
                }
                Input::Tick => {
                    self.catch_up_ticks();
                    self.core.forget_reads(|reply| reply.is_closed());
                    self.housekeeping();
                    "tick"
                }
                Input::Request(request) => {
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
                    "requests"
                }
                Input::Storage(event) => {
                    self.storage_event(event).await?;
                    "storage"
                }
                Input::Peer(envelope) => {
                    self.step(envelope);
                    for _ in 0..MAX_INPUTS_PER_TURN {
                        match self.parts.inbound.try_recv() {
                            Ok(envelope) => self.step(envelope),
                            Err(_) => break,
                        }
                    }
                    "inbound"
                }
            };
            self.notice_role_change();
        }
    }

    /// Brings the core's tick count up to the monotonic clock (`core.rs`, Time).
    fn catch_up_ticks(&mut self) {
        let now = self.origin.elapsed();
        // Whole ticks owed beyond the one due: how late the driver came.
        let late = now
            .saturating_sub(self.core.ticked_until())
            .saturating_sub(self.parts.tick);
        self.stalls.observe(Instant::now(), Stall::Late, late);
        self.core.tick_to(now);
    }

    fn step(&mut self, envelope: Envelope) {
        let from = envelope.from;
        if let Some(meta) = core::snapshot_of(&envelope) {
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
        if let Err((kind, reason)) = self.core.step(envelope) {
            self.parts
                .refusals
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .refused(std::time::Instant::now(), from, kind, &reason);
        }
    }

    fn handle_request(&mut self, request: NodeRequest) {
        match request {
            NodeRequest::Propose { ops, replies } => {
                for (reply, answer) in self.core.propose_batch(&ops, replies, wall_clock_ms()) {
                    reply.send(answer);
                }
            }
            NodeRequest::ReadIndex { reply } => {
                if let Err((reply, leader)) = self.core.read_index(reply) {
                    let _ = reply.send(LocalRead::NotLeader(leader));
                }
            }
            NodeRequest::TransferLeader { to, reply } => {
                let voters = self.core.raft().membership().voters();
                let _ = reply.send(self.core.transfer_leader(to, &voters));
            }
            NodeRequest::ChangeMembership { change, reply } => {
                let _ = reply.send(self.change_membership(&change));
            }
            NodeRequest::Snapshot { schedule, reply } => {
                let _ = reply.send(self.snapshot_now(schedule));
            }
        }
    }

    /// A snapshot asked for by a client (`SAVE`, `BGSAVE`, `BGREWRITEAOF`).
    fn snapshot_now(&mut self, schedule: bool) -> super::SnapshotStart {
        match self.core.snapshot_now() {
            core::SnapshotNow::Start(index, term) => {
                let (done, heard) = oneshot::channel();
                self.snapshot_waiters.push(done);
                self.start_snapshot(index, term);
                super::SnapshotStart::Started(heard)
            }
            core::SnapshotNow::Current => super::SnapshotStart::Current,
            core::SnapshotNow::InFlight => {
                self.snapshot_scheduled |= schedule;
                super::SnapshotStart::InProgress {
                    scheduled: schedule,
                }
            }
        }
    }

    /// Proposes the membership `change` leads to (`members.rs`); the
    /// receiver gets the outcome once the entry is applied or overwritten.
    fn change_membership(
        &mut self,
        change: &super::members::MemberChange,
    ) -> super::MemberProposal {
        use super::members::{next_membership, MemberError};
        let raft = self.core.raft();
        let status = raft.status();
        if status.role != Role::Leader {
            return Err(MemberError::NotLeader {
                me: status.id,
                leader: status.leader,
            });
        }
        if change.holds_in(raft.membership()) {
            // Made already (a retry after an unknown outcome): done once
            // committed; until then it may still be overwritten.
            if raft.membership_committed() {
                return Ok(super::MemberProposed::Holds(status.membership_index));
            }
            return Err(MemberError::NotNow(format!(
                "the change is in the log at index {} but not committed yet",
                status.membership_index.0
            )));
        }
        let commit = status.commit_index.0;
        let progress: HashMap<NodeId, u64> = raft
            .learner_progress()
            .map(|(id, match_index)| (id, match_index.0))
            .collect();
        let lag = |id: NodeId| progress.get(&id).map(|&m| commit.saturating_sub(m));
        let next = next_membership(raft.membership(), change, lag)?;
        let (reply, outcome) = oneshot::channel();
        match self
            .core
            .propose_membership_for(next, WriteReply::one(reply))
        {
            Ok(index) => Ok(super::MemberProposed::Appended(index, outcome)),
            Err(crate::raft::Error::NotLeader { leader }) => Err(MemberError::NotLeader {
                me: status.id,
                leader,
            }),
            Err(crate::raft::Error::InvalidMembership(why)) => {
                Err(MemberError::Invalid(why.to_string()))
            }
            Err(e) => Err(MemberError::NotNow(e.to_string())),
        }
    }

    /// The membership in effect changed (appended, received, rolled back,
    /// installed with a snapshot): the table and the transport follow it
    /// before this Ready's messages leave, so they reach new members. Until
    /// it commits, the members of the last committed membership stay peers
    /// too ([`super::members::MemberTable`]); [`Driver::retire_outgoing`]
    /// drops them once it has.
    fn set_membership(&mut self, membership: crate::raft::Membership) {
        let raft = self.core.raft();
        let me = raft.status().id;
        let index = raft.status().membership_index;
        info!(
            index = index.0,
            voters = ?membership.voters(),
            learners = ?membership.learners(),
            "membership in effect"
        );
        let outgoing = (!raft.membership_committed())
            .then(|| raft.committed_membership().clone())
            .filter(|committed| *committed != membership);
        let mut peers = membership.clone();
        if let Some(committed) = &outgoing {
            for (id, member) in &committed.members {
                peers.members.entry(*id).or_insert_with(|| member.clone());
            }
        }
        self.outgoing_peers = outgoing.is_some();
        self.parts
            .transport
            .set_peers(&super::peer_addrs(&peers, me, &self.parts.fallback_peers));
        self.parts.members.set_outgoing(outgoing);
        self.parts.members.set(membership);
        // The leader's address may have moved with it.
        self.parts
            .status
            .send_modify(|status| status.leader_resp_addr = None);
    }

    /// The membership in effect has committed: members of the one it replaced
    /// stop being peers.
    fn retire_outgoing(&mut self) {
        if !self.outgoing_peers || !self.core.raft().membership_committed() {
            return;
        }
        self.outgoing_peers = false;
        let me = self.core.raft().status().id;
        let membership = self.parts.members.get();
        self.parts.transport.set_peers(&super::peer_addrs(
            &membership,
            me,
            &self.parts.fallback_peers,
        ));
        self.parts.members.set_outgoing(None);
        info!("membership committed; members it removed are no longer peers");
    }

    /// Active expiry and eviction (ARCHITECTURE.md, the state machine): every
    /// [`HOUSEKEEPING_INTERVAL`] the leader proposes deleting keys that expired by
    /// its clock and, over `maxmemory`, the victims its policy picks, so every
    /// replica removes the same keys at the same log index. One housekeeping entry
    /// is in flight at a time.
    fn housekeeping(&mut self) {
        self.ticks_since_housekeeping += 1;
        let status = self.core.raft().status();
        let in_flight = self
            .housekeeping_in_flight
            .is_some_and(|index| index > status.last_applied);
        if !housekeeping_due(
            self.ticks_since_housekeeping,
            self.housekeeping_every_ticks,
            self.housekeeping_backlog,
            in_flight,
        ) {
            return;
        }
        self.ticks_since_housekeeping = 0;
        self.housekeeping_backlog = false;
        if status.role != Role::Leader || self.loading || status.transferring_to.is_some() {
            return;
        }
        if in_flight {
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
        self.housekeeping_backlog = ops.iter().any(|op| match op {
            kv::Op::Expire { keys } | kv::Op::Evict { keys } => keys.len() >= HOUSEKEEPING_MAX_KEYS,
            _ => false,
        });
        for op in ops {
            let command = kv::Command { ts_ms: now_ms, op };
            match self.core.propose_internal(&command) {
                Ok(index) => self.housekeeping_in_flight = Some(index),
                Err(e) => tracing::debug!(error = %e, "housekeeping proposal refused"),
            }
        }
    }

    /// One Ready of the core, carried out in the order `core.rs` documents.
    async fn handle_ready(&mut self) -> Result<(), NodeError> {
        let mut ready = self.core.ready()?;
        // a. Before any message leaves: a transfer's TimeoutNow must not be
        //    sent while direct reads still trust the lease it ends.
        self.publish_lease(ready.lease);
        // b. An installed snapshot replaces the map and the stored log first.
        if let Some(meta) = ready.snapshot.take() {
            self.install_snapshot(meta).await?;
        }
        if let Some(membership) = ready.membership.take() {
            self.set_membership(membership);
        }
        // c. What may leave now.
        self.send_messages(&mut ready.send);
        // d. The WAL work; what depends on it waits in the core until
        //    `on_persisted`.
        if let Some(job) = ready.persist.take() {
            if job.sync || self.wal.is_none() {
                self.wal_queue.push(job);
            } else if let Some(hard_state) = job.hard_state {
                // Only the commit index moved: nothing sent depends on it being
                // durable, so it rides along with the next fsync (a restart that
                // misses it replays less and relearns the rest from the leader).
                self.wal_mut().set_hard_state(hard_state)?;
            }
        }
        self.start_wal_batch();
        // e. Apply, without waiting for the local fsync (core.rs).
        if !ready.apply.is_empty() {
            self.apply(&ready.apply)?;
            self.maybe_snapshot();
            self.retire_outgoing();
        }
        // f. Reads confirmed by a quorum; callers wait for apply >= index.
        if !ready.reads.is_empty() {
            // Expiry "now" for these reads: this leader's clock, never behind the
            // replicated now (ARCHITECTURE.md, the client path, step 4).
            let replicated_now_ms = self
                .parts
                .db
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .now_ms();
            let now_ms = wall_clock_ms().max(replicated_now_ms);
            for (reply, index) in ready.reads {
                let _ = reply.send(LocalRead::Index { index, now_ms });
            }
        }
        Ok(())
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
        self.parts.metrics.wal_batch_jobs.record(jobs.len() as f64);
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

    /// A WAL batch ended: on success the core releases what every job it
    /// covered held back, and the next batch starts. A failed write or fsync
    /// stops the node.
    fn wal_batch_done(
        &mut self,
        joined: Result<WalBatchDone, tokio::task::JoinError>,
    ) -> Result<(), NodeError> {
        let (wal, result, elapsed, through) =
            joined.map_err(|e| NodeError::StorageTask(e.to_string()))?;
        self.wal = Some(wal);
        self.parts.metrics.wal_fsync.record(elapsed.as_secs_f64());
        result.map_err(NodeError::Store)?;
        // Before the next batch takes the WAL again.
        self.start_compaction()?;
        let mut released = self.core.on_persisted(through);
        for (reply, answer) in released.replies {
            reply.send(answer);
        }
        self.send_messages(&mut released.send);
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
            if let Some(meta) = core::snapshot_of(&envelope) {
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

    /// Step b of a Ready carrying `meta` (snapshot.rs): the map becomes the
    /// snapshot's, the WAL restarts at it with the suffix the core kept.
    async fn install_snapshot(&mut self, meta: SnapshotMeta) -> Result<(), NodeError> {
        let store = self.parts.snapshots.clone();
        let kept = self.core.entries_after_snapshot();
        let install_meta = meta.clone();
        // The reset deletes every older segment: the ones a compaction is
        // deleting go first (`Wal::take_compaction`). The WAL is drained
        // first because a batch that ends may start a compaction; after
        // both, nothing starts either until the reset is done.
        self.drain_wal().await?;
        while let Some(task) = self.compaction.take() {
            let joined = task.await;
            self.compaction_done(joined)?;
        }
        // What a deferred compaction would take, the reset deletes.
        self.compact_through = None;
        let db = self
            .with_wal(move |wal| snap::install_snapshot(&store, wal, &install_meta, &kept))
            .await??;
        let keys = db.len();
        let replaced = {
            let mut current = self.parts.db.write().unwrap_or_else(|e| e.into_inner());
            let mut db = db;
            // The node's script monitor is not state: it stays.
            db.script_watch = current.script_watch.clone();
            std::mem::replace(&mut *current, db)
        };
        // Freeing the old map takes as long as a flush of it.
        free_off_loop(replaced);
        self.parts.key_waits.touched_all();
        // Any key may have changed: as after a flush, every cache is stale.
        self.parts
            .tracking
            .invalidate(&[(None, super::tracking::Change::Flush)]);
        self.parts.metrics.keys.set(keys as f64);
        self.parts.metrics.snapshots_installed.increment(1);
        let index = meta.last_included_index;
        self.durable_snapshot_index = self.durable_snapshot_index.max(index);
        for (reply, answer) in self.core.snapshot_installed(&meta) {
            reply.send(answer);
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

    /// After applying: starts a local snapshot when the core says one is due.
    fn maybe_snapshot(&mut self) {
        if let Some((index, term)) = self.core.snapshot_due() {
            self.start_snapshot(index, term);
        }
    }

    /// Copies the map, which stands at (`index`, `term`), and writes the
    /// copy to a snapshot file on a blocking thread.
    fn start_snapshot(&mut self, index: LogIndex, term: Term) {
        let meta = snap::local_meta(index, term, self.core.raft().membership_at(index));
        // The copy is taken now, at exactly `index`; encoding and writing it
        // happen on a blocking thread while the node goes on.
        let started = Instant::now();
        let chunks = self
            .parts
            .db
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .snapshot_chunks(self.parts.snapshot_chunk_bytes);
        self.costs.snapshot_copy += started.elapsed();
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
            let ok = snap::stream_snapshot(store, transport, envelope, meta, chunk_bytes).await;
            let _ = events.send(StorageEvent::StreamEnded { peer, ok });
        });
    }

    async fn storage_event(&mut self, event: StorageEvent) -> Result<(), NodeError> {
        match event {
            StorageEvent::StreamEnded { peer, ok } => {
                self.streams.remove(&peer);
                if ok {
                    self.parts.metrics.snapshots_sent_ok.increment(1);
                } else {
                    self.parts.metrics.snapshots_sent_failed.increment(1);
                }
                Ok(())
            }
            StorageEvent::SnapshotTaken(result) => {
                // Like a failed WAL fsync, a failed snapshot write stops the
                // node (etcd does the same): the disk cannot be trusted.
                let taken = match result {
                    Ok(taken) => taken,
                    Err(e) => {
                        self.core.snapshot_failed();
                        return Err(e.into());
                    }
                };
                let metrics = &self.parts.metrics;
                metrics
                    .snapshot_duration
                    .record(taken.elapsed.as_secs_f64());
                metrics.snapshot_bytes.set(taken.payload_bytes as f64);
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
                let (next, compacted) = self
                    .core
                    .snapshot_taken(taken.log_floor, taken.payload_bytes);
                // Freeing a long log's payloads took 100-140 ms under make
                // bench (`bench/PERFORMANCE.md`).
                free_off_loop(compacted);
                self.compact_through = self.compact_through.max(Some(through));
                self.start_compaction()?;
                for waiter in self.snapshot_waiters.drain(..) {
                    let _ = waiter.send(());
                }
                if let Some((index, term)) = next {
                    self.start_snapshot(index, term);
                } else if std::mem::take(&mut self.snapshot_scheduled) {
                    if let core::SnapshotNow::Start(index, term) = self.core.snapshot_now() {
                        self.start_snapshot(index, term);
                    }
                }
                Ok(())
            }
        }
    }

    /// Starts deleting the WAL segments a durable snapshot covers, on a
    /// blocking thread while the log goes on being written, unless a
    /// compaction runs or a batch holds the WAL (then it starts when that
    /// ends). The old way, deleting inside the turn, stalled the node for
    /// 100-200 ms per snapshot under load (`bench/PERFORMANCE.md`).
    fn start_compaction(&mut self) -> Result<(), NodeError> {
        if self.compaction.is_some() {
            return Ok(());
        }
        let Some(through) = self.compact_through else {
            return Ok(());
        };
        let Some(wal) = self.wal.as_mut() else {
            return Ok(());
        };
        self.compact_through = None;
        let compaction = wal.take_compaction(through)?;
        if !compaction.is_empty() {
            info!(
                through = through.0,
                segments = compaction.len(),
                "compacting the WAL"
            );
            self.compaction = Some(tokio::task::spawn_blocking(move || compaction.run()));
        }
        Ok(())
    }

    /// A compaction ended: a failed delete or directory fsync stops the node,
    /// like a failed WAL fsync. Starts the next one, if one waits.
    fn compaction_done(
        &mut self,
        joined: Result<Result<usize, crate::store::WalError>, tokio::task::JoinError>,
    ) -> Result<(), NodeError> {
        let deleted = joined.map_err(|e| NodeError::StorageTask(e.to_string()))??;
        info!(segments = deleted, "WAL compacted");
        self.start_compaction()
    }

    fn wal_mut(&mut self) -> &mut Wal {
        self.wal
            .as_mut()
            .expect("the WAL is only absent while a blocking WAL task runs, and they never overlap")
    }

    /// Applies committed entries to the map, then answers their writers
    /// (the core matches writers to entries).
    fn apply(&mut self, entries: &[Entry]) -> Result<(), NodeError> {
        let mut outputs = Vec::with_capacity(entries.len());
        let mut changes = Vec::new();
        let (mut touched, frames) = {
            let waited = Instant::now();
            let mut db = self.parts.db.write().unwrap_or_else(|e| e.into_inner());
            self.costs.lock_wait += waited.elapsed();
            // Read under the write lock: a client that starts tracking and
            // then reads (under the read lock) is either seen here or reads
            // after this batch (`node/tracking.rs`).
            let tracking = self.parts.tracking.active();
            db.track_touched(self.parts.key_waits.any() || tracking);
            let (node, incarnation) = self.parts.pubsub.local();
            db.pubsub.set_local(node, incarnation);
            // One clock read per entry: an entry's time runs from the end
            // of the one before (its decode included).
            let mut last = Instant::now();
            for entry in entries {
                let output = match entry.kind {
                    EntryKind::Noop => None,
                    // The core acts on it when it is appended; a change an
                    // operator waits for is answered once it is applied.
                    EntryKind::Membership => Some(kv::Output::Ok),
                    EntryKind::Normal => {
                        let command =
                            kv::Command::decode_shared(&entry.data).map_err(|source| {
                                NodeError::Decode {
                                    index: entry.index,
                                    source,
                                }
                            })?;
                        let output = db.apply(&command);
                        let now = Instant::now();
                        let took = now.saturating_duration_since(last);
                        last = now;
                        self.costs.entry(took, || {
                            let mut what = format!("{:?}", command.op);
                            let cut = what.char_indices().nth(120).map_or(what.len(), |(i, _)| i);
                            what.truncate(cut);
                            what
                        });
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
            let garbage = db.take_garbage();
            if !garbage.is_empty() {
                // A flushed keyspace of millions of keys takes about a second
                // to free.
                free_off_loop(garbage);
            }
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
        let normal = entries
            .iter()
            .filter(|e| e.kind == EntryKind::Normal)
            .count();
        self.parts
            .metrics
            .proposals_committed
            .increment(normal as u64);
        for (reply, answer) in self.core.applied(entries, outputs) {
            reply.send(answer);
        }
        if let Some(last) = entries.last() {
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
        let (dropped, changed) = self.core.notice_role_change();
        for (reply, leader) in dropped {
            let _ = reply.send(LocalRead::NotLeader(leader));
        }
        let status = self.core.raft().status();
        if let Some(role) = changed {
            info!(term = status.term.0, role = ?role, "role changed");
        }
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

    /// Publishes the core's lease deadline for direct reads (`lease.rs`), or
    /// revokes it.
    fn publish_lease(&self, until: Option<Duration>) {
        match until.and_then(|until| self.origin.checked_add(until)) {
            Some(until) => self.parts.lease.grant(until),
            None => self.parts.lease.revoke(),
        }
    }

    fn publish_status(&mut self) {
        let status = self.core.raft().status();
        let next = NodeStatus {
            id: status.id,
            role: status.role,
            term: status.term,
            leader: status.leader,
            last_leader: status.leader.or(self.last_leader),
            // Filled in below, from the current status while the leader stays.
            leader_resp_addr: None,
            commit_index: status.commit_index,
            last_applied: status.last_applied,
            last_log_index: status.last_log_index,
            loading: self.loading,
            leader_changes: self.leader_changes,
            snapshot_index: self.durable_snapshot_index,
            voters: self.core.raft().voter_count(),
            // Filled in below, without allocating unless they changed.
            followers: Vec::new(),
            learners: Vec::new(),
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
        metrics
            .pending_proposals
            .set(self.core.pending_writes() as f64);
        // This runs on every turn of the loop: the leader's address is looked
        // up and formatted only when the leader changes, never per request.
        let members = self.parts.members.get();
        let resp_addr = |id: NodeId| members.members.get(&id).map(|m| m.resp_addr);
        let raft = self.core.raft();
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
                        resp_addr: resp_addr(id),
                    }
                }));
            }
            let mut learners = std::mem::take(&mut current.learners);
            let learners_changed = !learners
                .iter()
                .map(|l| (l.id, l.match_index))
                .eq(raft.learner_progress());
            if learners_changed {
                learners.clear();
                learners.extend(
                    raft.learner_progress()
                        .map(|(id, match_index)| crate::node::LearnerStatus { id, match_index }),
                );
            }
            let address = match current.leader_resp_addr.take() {
                Some(address) if current.leader == next.leader => Some(address),
                _ => next.leader.and_then(resp_addr).map(|a| a.to_string()),
            };
            let changed = *current != next || matches_changed || learners_changed;
            *current = next;
            current.leader_resp_addr = address;
            current.followers = matches;
            current.learners = learners;
            changed
        });
    }
}

/// Whether a housekeeping round runs on this tick: once per `every` ticks,
/// and while the last round left a `backlog`, on the first tick after its
/// entry applied (rather than skipping the whole interval while it is still
/// `in_flight`).
fn housekeeping_due(ticks_since: u64, every: u64, backlog: bool, in_flight: bool) -> bool {
    if backlog {
        !in_flight
    } else {
        ticks_since >= every
    }
}

/// The running WAL batch's outcome; pending forever when none runs.
/// Frees `value` on a blocking thread: not on the driver's loop, which
/// Raft's heartbeats wait for.
fn free_off_loop<T: Send + 'static>(value: T) {
    tokio::task::spawn_blocking(move || drop(value));
}

/// The end of a blocking task, if one runs; never, if none does.
async fn finished<T>(
    task: &mut Option<tokio::task::JoinHandle<T>>,
) -> Result<T, tokio::task::JoinError> {
    match task {
        Some(task) => task.await,
        None => std::future::pending().await,
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
    use super::housekeeping_due;

    #[test]
    fn a_full_housekeeping_round_is_followed_once_its_entry_applied() {
        // Rounds that found less than an entry holds: once per interval.
        assert!(!housekeeping_due(9, 10, false, false));
        assert!(housekeeping_due(10, 10, false, false));
        assert!(housekeeping_due(10, 10, false, true));
        // A full round: the next one as soon as its entry applied, whatever
        // the interval.
        assert!(!housekeeping_due(1, 10, true, true));
        assert!(housekeeping_due(1, 10, true, false));
    }
}
