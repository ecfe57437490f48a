//! One simulated node: the production node core (`node/core.rs`) carried out
//! synchronously, persisting through the real [`Wal`] and [`SnapshotStore`]
//! on a per-node [`FaultyFs`], with a real [`Db`] fed by committed entries.
//!
//! This is the shell the tokio driver (`node/driver.rs`) is, minus tokio: one
//! turn ([`SimNode::turn`]) completes the storage work that came due, then
//! carries out every `core.ready()` in the contract's order (lease, snapshot
//! install, send, persist, apply, reads). The WAL batch is pipelined like
//! the driver's: jobs queue while a batch "runs", a batch writes every queued
//! job and fsyncs once (group commit), and it completes — `on_persisted` —
//! when the step the seed chose for it comes, possibly steps later. Local
//! snapshots are copied at once and written when their step comes, while the
//! node goes on (a crash in between loses the unfinished file).
//!
//! One crash model, the filesystem's: [`SimNode::crash`] drops the core,
//! the map and the WAL and power-cuts the node's `FaultyFs` (everything not
//! fsynced is lost; a torn cut keeps a prefix of the last unsynced append).
//! A crash can also come from the disk: an injected fsync or write failure
//! poisons the WAL (or fails a snapshot write), the node stops as the driver
//! would, and the power cut follows. [`SimNode::restart`] recovers through
//! the production startup code (`node::open_locked_storage`: newest valid
//! snapshot, then the WAL that continues it) and builds a fresh core.
//!
//! The node keeps a mirror of its log as the core handed it out (everything
//! the checkers need to read a node's log without reaching into the core).
//! Client reply handles are plain [`Handle`]s; answers go to
//! [`SimNode::outbox`] for the clients.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::checks::{Checker, Violation};
use crate::kv::{Db, Op};
use crate::node::core::{CoreConfig, CoreError, CoreFaults, CoreReady, NodeCore, PersistJob};
use crate::node::snapshot::{self as snap, ReceiveContext, SnapshotReceiver};
use crate::node::{LocalWrite, NodeError};
use crate::raft::{
    Config, Entry, EntryKind, Envelope, HardState, InitialState, LogIndex, Membership, NodeId,
    Raft, Role, RuleBreaks, SnapshotMeta, Status, Term,
};
use crate::store::{FaultyFs, LogStore, SnapshotStore, Wal, WalOptions};
use crate::transport::SnapshotChunk;

/// Length of one tick of the simulated clock (one step).
pub const TICK: Duration = Duration::from_millis(10);
/// The data directory of every node (each on its own filesystem).
const DATA_DIR: &str = "/data";
/// Snapshot chunk size (small, so streams have several chunks).
const SNAPSHOT_CHUNK_BYTES: usize = 256;
/// Most writes waiting for their entry on a leader.
const MAX_PENDING_PROPOSALS: usize = 1024;

/// A client's reply handle: which client, which of its operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handle {
    /// The client.
    pub client: usize,
    /// Its operation's sequence number.
    pub seq: u64,
}

/// The core with the simulator's reply handles.
type SimCore = NodeCore<Handle, Handle>;

/// An answer for a client.
pub enum Answer {
    /// A write's outcome, with the entry it was applied as (if applied).
    Write(Handle, LocalWrite, Option<(LogIndex, Term)>),
    /// A read's index is confirmed: serve it once the map applied it.
    ReadIndex(Handle, LogIndex),
    /// A read cannot be confirmed here.
    ReadFailed(Handle, Option<NodeId>),
}

/// A storage fault to inject at the node's next storage completion.
#[derive(Clone, Copy, Debug)]
pub enum DiskFault {
    /// The process dies before the write: nothing of it reaches the disk.
    CrashBeforeWrite,
    /// The fsync fails (EIO): the node stops; `keep` unsynced bytes of the
    /// write survive the power cut that follows (a torn write).
    SyncFails {
        /// Unsynced bytes kept per file.
        keep: u64,
    },
    /// The write itself fails: the node stops.
    WriteFails,
}

/// Parameters of a node's storage, drawn from the seed.
#[derive(Clone, Copy, Debug)]
pub struct Disk {
    /// WAL options (small segments, so rolling and compaction happen).
    pub wal: WalOptions,
    /// Most steps a WAL batch or snapshot write takes to complete.
    pub max_delay: u64,
    /// Take a snapshot after this many applied entries (0: never).
    pub snapshot_every: u64,
    /// ... and once they carry this percentage of the last one's bytes.
    pub snapshot_growth_percent: u64,
}

/// The WAL batch being written.
struct Batch {
    jobs: Vec<PersistJob>,
    due: u64,
}

/// A local snapshot being written: the copy of the map, and when it lands.
struct SnapshotTask {
    meta: SnapshotMeta,
    chunks: crate::kv::SnapshotChunks,
    due: u64,
}

/// What runs while the node is up.
struct Up {
    core: SimCore,
    wal: Wal,
    snapshots: Arc<SnapshotStore>,
    receiver: SnapshotReceiver,
    wal_queue: Vec<PersistJob>,
    batch: Option<Batch>,
    snapshot_task: Option<SnapshotTask>,
    /// WAL segments taken off the log, deleted when `due` comes (the driver
    /// deletes them on a blocking thread while the log goes on); a crash
    /// first leaves them on disk.
    compaction: Option<(crate::store::Compaction, u64)>,
    /// The floor of a compaction still to start (one runs).
    compact_through: Option<LogIndex>,
}

/// What one turn of a node did, for the simulator's trace and stats.
#[derive(Default)]
pub struct TurnEvents {
    /// Entries applied: (index, term).
    pub applied: Vec<(u64, u64)>,
    /// Messages to send, with the snapshot payload of an InstallSnapshot.
    pub send: Vec<(Envelope, Option<Bytes>)>,
    /// Snapshots installed from the leader: their index.
    pub installed: Vec<u64>,
    /// Local snapshots taken: their index.
    pub taken: Vec<u64>,
}

/// What a turn hands the node besides its inputs: the checkers, which see
/// every entry before it reaches the map, and the seed's draws.
pub struct TurnCtx<'a> {
    /// The safety checkers.
    pub checker: &'a mut Checker,
    /// A number in `0..n` from the sim's RNG.
    pub draw: &'a mut dyn FnMut(u64) -> u64,
    /// What happened.
    pub events: TurnEvents,
}

/// Why a node stopped by itself.
#[derive(Debug)]
pub enum Stop {
    /// An injected disk fault stopped it (expected: the sim crashes it,
    /// keeping this many unsynced bytes per file).
    Disk(u64, String),
    /// A checker failed.
    Check(Violation),
    /// The core refused its own Raft core's output: a broken rule.
    Core(CoreError),
    /// Storage failed without an injected fault: a bug.
    Storage(String),
}

/// A node of the simulated cluster.
pub struct SimNode {
    /// Its id.
    pub id: NodeId,
    /// Its disk.
    pub fs: FaultyFs,
    up: Option<Up>,
    /// The state machine.
    pub db: Db,
    /// The node's log after `log_offset` as the core handed it out (index i
    /// at i - log_offset - 1).
    pub log: Vec<Entry>,
    /// Index of the last entry covered by the node's snapshot (0: none).
    pub log_offset: u64,
    /// Term of that entry.
    pub offset_term: Term,
    /// The snapshot the map was last restored from or installed (meta).
    pub snapshot: Option<SnapshotMeta>,
    /// Highest index applied to `db` in this incarnation.
    pub applied_index: u64,
    /// How many times the node restarted (part of its RNG seed).
    pub restarts: u64,
    /// Rule break (d): write every hard state without its vote.
    pub forget_vote: bool,
    /// Status after the last check (for monotonicity), `None` after a restart.
    pub last_status: Option<Status>,
    /// Highest term made durable (a restart must not go below it).
    pub durable_term: Term,
    /// The durable state the last restart found.
    pub recovered: InitialState,
    /// The lease deadline last published (on the sim clock).
    pub lease: Option<Duration>,
    /// The node does nothing until this step (a paused process).
    pub paused_until: u64,
    /// Answers for the clients, drained by the simulator.
    pub outbox: Vec<Answer>,
    /// A fault for the next storage completion.
    pub disk_fault: Option<DiskFault>,
    config: Config,
    disk: Disk,
    seed: u64,
    raft_breaks: RuleBreaks,
    core_faults: CoreFaults,
    /// Rule break: accept snapshot chunks at or below the commit index.
    pub receive_stale_snapshots: bool,
}

/// The sim clock at step `now`.
pub fn clock(now: u64) -> Duration {
    TICK * u32::try_from(now).unwrap_or(u32::MAX)
}

impl SimNode {
    /// A fresh node, started at step `now` with rule breaks switched on.
    pub fn new(config: Config, disk: Disk, seed: u64, breaks: (RuleBreaks, CoreFaults)) -> SimNode {
        let mut node = SimNode {
            id: config.id,
            fs: FaultyFs::new(),
            up: None,
            db: Db::new(),
            log: Vec::new(),
            log_offset: 0,
            offset_term: Term(0),
            snapshot: None,
            applied_index: 0,
            restarts: 0,
            forget_vote: false,
            last_status: None,
            durable_term: Term(0),
            recovered: InitialState::default(),
            lease: None,
            paused_until: 0,
            outbox: Vec::new(),
            disk_fault: None,
            config,
            disk,
            seed,
            raft_breaks: breaks.0,
            core_faults: breaks.1,
            receive_stale_snapshots: false,
        };
        if let Err(e) = node.start(0) {
            panic!("a fresh node starts on an empty disk: {e}");
        }
        node
    }

    /// True while the node runs.
    pub fn is_up(&self) -> bool {
        self.up.is_some()
    }

    /// True while the node runs and is not paused at step `now`.
    pub fn is_serving(&self, now: u64) -> bool {
        self.is_up() && self.paused_until <= now
    }

    /// The core's status (None while down).
    pub fn status(&self) -> Option<Status> {
        self.up.as_ref().map(|up| up.core.raft().status())
    }

    /// True if the node believes it is a leader.
    pub fn is_leader(&self) -> bool {
        self.status().is_some_and(|s| s.role == Role::Leader)
    }

    /// The term of the entry at `index` in the mirrored log: the snapshot's
    /// term at its last index, `None` below it (compacted) or past the end.
    pub fn term_at(&self, index: u64) -> Option<Term> {
        if index == self.log_offset {
            return Some(self.offset_term);
        }
        let position = index.checked_sub(self.log_offset + 1)?;
        self.log.get(position as usize).map(|e| e.term)
    }

    /// Last index of the mirrored log (the snapshot's when no entry follows).
    pub fn last_index(&self) -> u64 {
        self.log_offset + self.log.len() as u64
    }

    /// Opens the node's data directory through the production recovery and
    /// builds a core from it, at step `now`.
    fn start(&mut self, now: u64) -> Result<(), NodeError> {
        let dir = Path::new(DATA_DIR);
        let lock = Wal::lock_with(self.fs.shared(), dir)?;
        let (wal, initial, snapshots, db) = crate::node::open_locked_storage(lock, self.disk.wal)?;
        let snapshots = Arc::new(snapshots);
        self.durable_term = self.durable_term.max(initial.hard_state.term);
        self.log = initial.entries.clone();
        let restored = initial
            .snapshot
            .as_ref()
            .map_or((LogIndex(0), Term(0)), |m| {
                (m.last_included_index, m.last_included_term)
            });
        self.log_offset = restored.0 .0;
        self.offset_term = restored.1;
        self.applied_index = restored.0 .0;
        self.snapshot = initial.snapshot.clone();
        self.db = db;
        self.recovered = initial.clone();
        let seed = self.seed.wrapping_mul(1_000_003) ^ (self.restarts << 32) ^ self.id.0;
        let mut raft = Raft::new(self.config.clone(), initial, seed)?;
        raft.set_rule_breaks(self.raft_breaks);
        let mut core = NodeCore::new(
            raft,
            CoreConfig {
                tick: TICK,
                max_catch_up_ticks: u64::from(self.config.election_timeout_max_ticks),
                max_pending_proposals: MAX_PENDING_PROPOSALS,
                early_ack: false,
                snapshot_every_entries: self.disk.snapshot_every,
                snapshot_log_growth_percent: self.disk.snapshot_growth_percent,
                restored,
                start: clock(now),
            },
        );
        core.set_faults(self.core_faults);
        self.up = Some(Up {
            core,
            wal,
            receiver: SnapshotReceiver::new(snapshots.clone()),
            snapshots,
            wal_queue: Vec::new(),
            batch: None,
            snapshot_task: None,
            compaction: None,
            compact_through: None,
        });
        self.last_status = None;
        self.lease = None;
        Ok(())
    }

    /// Crashes the node now: the core, the map and every unsynced byte are
    /// gone; `keep` unsynced bytes of each file's last append survive.
    pub fn crash(&mut self, keep: u64) {
        // Dropping the WAL releases its lock; the power cut does the rest.
        self.up = None;
        self.lease = None;
        self.outbox.clear();
        self.fs.power_cut_tearing(keep);
    }

    /// Starts a crashed node from its durable state at step `now`.
    ///
    /// # Errors
    /// The production recovery refused the data directory: a bug.
    pub fn restart(&mut self, now: u64) -> Result<(), String> {
        self.restarts += 1;
        self.paused_until = 0;
        self.start(now)
            .map_err(|e| format!("node {} cannot restart: {e}", self.id))
    }

    /// Brings the core's clock to step `now` (catch-up after a pause).
    pub fn tick_to(&mut self, now: u64) {
        if let Some(up) = self.up.as_mut() {
            up.core.tick_to(clock(now));
        }
    }

    /// Delivers a peer message; an InstallSnapshot's payload is streamed
    /// into the snapshot receiver first, in chunks, the way the leader's
    /// stream would arrive, and the message is dropped unless the receiver
    /// took it all (as the driver does).
    pub fn deliver(&mut self, envelope: Envelope, payload: Option<Bytes>) {
        let Some(up) = self.up.as_mut() else {
            return;
        };
        if let Some(meta) = crate::node::core::snapshot_of(&envelope) {
            let Some(payload) = payload else {
                return;
            };
            let status = up.core.raft().status();
            let ctx = ReceiveContext {
                term: status.term,
                leader: status.leader.filter(|&l| l != self.id),
                commit_index: if self.receive_stale_snapshots {
                    LogIndex(0)
                } else {
                    status.commit_index
                },
                max_bytes: u64::MAX,
            };
            for chunk in stream_chunks(meta, &payload) {
                if up.receiver.receive(envelope.from, chunk, &ctx).is_err() {
                    return;
                }
            }
            if !up.receiver.has_received(meta) {
                return;
            }
        }
        // A refused message is like a lost one, which Raft tolerates.
        let _ = up.core.step(envelope);
    }

    /// A client write proposed here (the core answers `NotLeader` at once
    /// when it does not lead).
    pub fn propose(&mut self, op: Op, handle: Handle, now: u64) {
        let Some(up) = self.up.as_mut() else {
            return;
        };
        let now_ms = clock(now).as_millis() as u64;
        for (handle, answer) in up.core.propose_batch(&[op], vec![handle], now_ms) {
            self.outbox.push(Answer::Write(handle, answer, None));
        }
    }

    /// A client read: a quorum round through the core.
    pub fn read_index(&mut self, handle: Handle) {
        let Some(up) = self.up.as_mut() else {
            return;
        };
        if let Err((handle, leader)) = up.core.read_index(handle) {
            self.outbox.push(Answer::ReadFailed(handle, leader));
        }
    }

    /// Whether the published lease lets a read skip the core at step `now`.
    pub fn lease_holds(&self, now: u64) -> bool {
        self.is_serving(now) && self.lease.is_some_and(|until| clock(now) < until)
    }

    /// The membership in effect and the committed one (`None` while down).
    pub fn memberships(&self) -> Option<(Membership, Membership)> {
        self.up.as_ref().map(|up| {
            let raft = up.core.raft();
            (
                raft.membership().clone(),
                raft.committed_membership().clone(),
            )
        })
    }

    /// Proposes the next membership; its index if the core took it.
    pub fn propose_membership(&mut self, membership: Membership) -> Option<LogIndex> {
        self.up
            .as_mut()
            .and_then(|up| up.core.propose_membership(membership).ok())
    }

    /// Starts a leadership transfer to `to`; whether the core took it.
    pub fn transfer_leader(&mut self, to: NodeId) -> bool {
        self.up.as_mut().is_some_and(|up| {
            let members = up.core.raft().membership().voters();
            up.core.transfer_leader(Some(to), &members).is_ok()
        })
    }

    /// A client proposal the simulator makes directly (scripts).
    pub fn propose_internal(&mut self, command: &crate::kv::Command) -> Option<LogIndex> {
        self.up
            .as_mut()
            .and_then(|up| up.core.propose_internal(command).ok())
    }

    /// One turn of the node's loop at step `now`: storage work that came
    /// due, then every Ready. `Err` when the node stopped by itself (the
    /// simulator then crashes it, or fails the run for a broken rule).
    pub fn turn(&mut self, now: u64, ctx: &mut TurnCtx<'_>) -> Result<(), Stop> {
        if !self.is_serving(now) {
            return Ok(());
        }
        // Bounded: every round completes storage work or a Ready.
        for _ in 0..1_000 {
            let mut progressed = false;
            if self.batch_due(now) {
                self.complete_batch(now, ctx)?;
                progressed = true;
            }
            if self.snapshot_due(now) {
                self.complete_snapshot(now, ctx)?;
                progressed = true;
            }
            if self.compaction_due(now) {
                self.complete_compaction(now, ctx)?;
                progressed = true;
            }
            while self.up.as_ref().is_some_and(|up| up.core.has_ready()) {
                self.handle_ready(now, ctx)?;
                progressed = true;
            }
            self.start_batch(now, ctx);
            if !progressed {
                break;
            }
        }
        let up = self.up_mut()?;
        let (dropped, _) = up.core.notice_role_change();
        let lease = up.core.lease_until();
        for (handle, leader) in dropped {
            self.outbox.push(Answer::ReadFailed(handle, leader));
        }
        self.lease = lease;
        Ok(())
    }

    fn up_mut(&mut self) -> Result<&mut Up, Stop> {
        self.up
            .as_mut()
            .ok_or_else(|| Stop::Storage("the node is down".into()))
    }

    fn batch_due(&self, now: u64) -> bool {
        self.up
            .as_ref()
            .and_then(|up| up.batch.as_ref())
            .is_some_and(|b| b.due <= now)
    }

    fn compaction_due(&self, now: u64) -> bool {
        self.up
            .as_ref()
            .and_then(|up| up.compaction.as_ref())
            .is_some_and(|(_, due)| *due <= now)
    }

    fn snapshot_due(&self, now: u64) -> bool {
        self.up
            .as_ref()
            .and_then(|up| up.snapshot_task.as_ref())
            .is_some_and(|t| t.due <= now)
    }

    /// One Ready, in the order `node/core.rs` documents.
    fn handle_ready(&mut self, now: u64, ctx: &mut TurnCtx<'_>) -> Result<(), Stop> {
        let mut ready: CoreReady<Handle> = self.up_mut()?.core.ready().map_err(Stop::Core)?;
        // a. The lease, before anything leaves.
        self.lease = ready.lease;
        // b. An installed snapshot replaces the map and the stored log.
        if let Some(meta) = ready.snapshot.take() {
            self.install_snapshot(now, meta, ctx)?;
        }
        // c. What may leave now.
        self.send(std::mem::take(&mut ready.send), ctx);
        // d. The WAL work (what depends on it waits in the core).
        if let Some(mut job) = ready.persist.take() {
            if let Some(first) = job.entries.first() {
                let keep = first.index.0.saturating_sub(self.log_offset + 1);
                if keep > self.log.len() as u64 {
                    return Err(Stop::Storage(format!(
                        "node {}: a Ready left a gap in the log at {}",
                        self.id, first.index
                    )));
                }
                self.log.truncate(keep as usize);
                self.log.extend(job.entries.iter().cloned());
                ctx.checker
                    .on_persist(self, &job.entries)
                    .map_err(Stop::Check)?;
            }
            if self.forget_vote {
                job.hard_state = job.hard_state.map(|hs| HardState {
                    voted_for: None,
                    ..hs
                });
            }
            let up = self.up_mut()?;
            if job.sync || up.batch.is_some() {
                up.wal_queue.push(job);
            } else if let Some(hard_state) = job.hard_state {
                // Only the commit index moved: it rides with the next fsync.
                up.wal
                    .set_hard_state(hard_state)
                    .map_err(|e| Stop::Storage(e.to_string()))?;
            }
        }
        self.start_batch(now, ctx);
        // e. Apply, without waiting for the local fsync.
        if !ready.apply.is_empty() {
            self.apply(now, &ready.apply, ctx)?;
        }
        // f. Confirmed reads: served once the map applied their index.
        for (handle, index) in ready.reads {
            self.outbox.push(Answer::ReadIndex(handle, index));
        }
        Ok(())
    }

    /// Applies committed entries (each checked first) and answers their
    /// writers; at every multiple of the snapshot interval the map is
    /// compared with the other nodes'; then a local snapshot starts if due.
    fn apply(&mut self, now: u64, entries: &[Entry], ctx: &mut TurnCtx<'_>) -> Result<(), Stop> {
        for entry in entries {
            ctx.checker.on_apply(self, entry).map_err(Stop::Check)?;
            let index = entry.index.0;
            let output = match entry.kind {
                EntryKind::Normal => {
                    let output = self.db.apply(ctx.checker.command(index));
                    // The server frees it on another thread; here, at once.
                    drop(self.db.take_garbage());
                    Some(output)
                }
                EntryKind::Noop | EntryKind::Membership => None,
            };
            ctx.events.applied.push((index, entry.term.0));
            let answers = self
                .up_mut()?
                .core
                .applied(std::slice::from_ref(entry), vec![output]);
            for (handle, answer) in answers {
                self.outbox.push(Answer::Write(
                    handle,
                    answer,
                    Some((entry.index, entry.term)),
                ));
            }
            let every = self.disk.snapshot_every;
            if every > 0 && index % every == 0 {
                ctx.checker
                    .on_checkpoint(self, index, &self.db.snapshot_bytes())
                    .map_err(Stop::Check)?;
            }
        }
        if let Some((index, term)) = self.up_mut()?.core.snapshot_due() {
            self.start_snapshot(now, index, term, ctx)?;
        }
        Ok(())
    }

    /// Copies the map now (it stands at `index`) for a snapshot written
    /// when its drawn step comes; the checker records the state there.
    fn start_snapshot(
        &mut self,
        now: u64,
        index: LogIndex,
        term: Term,
        ctx: &mut TurnCtx<'_>,
    ) -> Result<(), Stop> {
        ctx.checker
            .on_checkpoint(self, index.0, &self.db.snapshot_bytes())
            .map_err(Stop::Check)?;
        let delay = (ctx.draw)(self.disk.max_delay + 1);
        let task = SnapshotTask {
            meta: snap::local_meta(index, term, self.up_mut()?.core.raft().membership_at(index)),
            chunks: self.db.snapshot_chunks(SNAPSHOT_CHUNK_BYTES),
            due: now + delay,
        };
        self.up_mut()?.snapshot_task = Some(task);
        Ok(())
    }

    /// Arms the pending disk fault on the filesystem; `Err` for a crash
    /// before the write.
    fn arm_fault(&mut self, what: &str) -> Result<Option<u64>, Stop> {
        match self.disk_fault.take() {
            None => Ok(None),
            Some(DiskFault::CrashBeforeWrite) => {
                Err(Stop::Disk(0, format!("crashed before the {what}")))
            }
            Some(DiskFault::SyncFails { keep }) => {
                self.fs.fail_next_sync();
                Ok(Some(keep))
            }
            Some(DiskFault::WriteFails) => {
                self.fs.fail_next_write();
                Ok(Some(0))
            }
        }
    }

    /// After a storage call: a failure is the injected fault (or a bug);
    /// an armed fault that no call hit is disarmed.
    fn check_io<T, E: std::fmt::Display>(
        &mut self,
        armed: Option<u64>,
        what: &str,
        result: Result<T, E>,
    ) -> Result<T, Stop> {
        self.fs.disarm();
        result.map_err(|e| match armed {
            Some(keep) => Stop::Disk(keep, format!("{what}: {e}")),
            None => Stop::Storage(format!("node {}: {what}: {e}", self.id)),
        })
    }

    fn complete_snapshot(&mut self, now: u64, ctx: &mut TurnCtx<'_>) -> Result<(), Stop> {
        let Some(task) = self.up_mut()?.snapshot_task.take() else {
            return Ok(());
        };
        let armed = self.arm_fault("snapshot write")?;
        let up = self.up_mut()?;
        let written = snap::write_snapshot(&up.snapshots, task.meta, task.chunks);
        if written.is_err() {
            up.core.snapshot_failed();
        }
        let taken = self.check_io(armed, "snapshot write", written)?;
        ctx.events.taken.push(taken.meta.last_included_index.0);
        let up = self.up_mut()?;
        let through = taken.floor.last_included_index;
        let (next, _compacted) = up.core.snapshot_taken(taken.log_floor, taken.payload_bytes);
        up.compact_through = up.compact_through.max(Some(through));
        self.start_compaction(now, ctx)?;
        if let Some((index, term)) = next {
            self.start_snapshot(now, index, term, ctx)?;
        }
        Ok(())
    }

    /// Like the driver: unless one runs or a batch holds the WAL (then the
    /// batch's end starts it), takes the segments a durable snapshot covers
    /// off the log, to delete them at a drawn later step.
    fn start_compaction(&mut self, now: u64, ctx: &mut TurnCtx<'_>) -> Result<(), Stop> {
        let up = self.up_mut()?;
        if up.compaction.is_some() || up.batch.is_some() {
            return Ok(());
        }
        let Some(through) = up.compact_through.take() else {
            return Ok(());
        };
        let taken = up.wal.take_compaction(through);
        let compaction = self.check_io(None, "WAL compaction", taken)?;
        if !compaction.is_empty() {
            let due = now + (ctx.draw)(self.disk.max_delay + 1);
            self.up_mut()?.compaction = Some((compaction, due));
        }
        Ok(())
    }

    /// Deletes the segments taken off the log, then starts the next
    /// compaction if one waits.
    fn complete_compaction(&mut self, now: u64, ctx: &mut TurnCtx<'_>) -> Result<(), Stop> {
        let Some((compaction, _)) = self.up_mut()?.compaction.take() else {
            return Ok(());
        };
        let deleted = compaction.run();
        self.check_io(None, "WAL compaction", deleted)?;
        self.start_compaction(now, ctx)
    }

    /// Step b: waits for the queued WAL writes, installs the received file
    /// through the production install, and tells the core.
    fn install_snapshot(
        &mut self,
        now: u64,
        meta: SnapshotMeta,
        ctx: &mut TurnCtx<'_>,
    ) -> Result<(), Stop> {
        // Like the driver: a batch's end may start a compaction, so drain
        // first; then the reset's deletions come after the compaction's.
        self.drain(now, ctx)?;
        while self.up_mut()?.compaction.is_some() {
            self.complete_compaction(now, ctx)?;
        }
        self.up_mut()?.compact_through = None;
        let up = self.up_mut()?;
        let kept = up.core.entries_after_snapshot();
        let installed = snap::install_snapshot(&up.snapshots, &mut up.wal, &meta, &kept);
        self.db = self.check_io(None, "snapshot install", installed)?;
        let answers = self.up_mut()?.core.snapshot_installed(&meta);
        for (handle, answer) in answers {
            self.outbox.push(Answer::Write(handle, answer, None));
        }
        self.log = kept;
        self.log_offset = meta.last_included_index.0;
        self.offset_term = meta.last_included_term;
        self.applied_index = meta.last_included_index.0;
        ctx.events.installed.push(meta.last_included_index.0);
        self.snapshot = Some(meta);
        ctx.checker
            .on_snapshot_restored(self)
            .map_err(Stop::Check)?;
        Ok(())
    }

    /// Hands messages to the network; an InstallSnapshot carries the payload
    /// of the snapshot file it names (the leader's stream), or is dropped
    /// when the file is gone (the stream fails; Raft sends it again).
    fn send(&mut self, messages: Vec<Envelope>, ctx: &mut TurnCtx<'_>) {
        let Some(up) = self.up.as_ref() else {
            return;
        };
        for envelope in messages {
            let payload = match crate::node::core::snapshot_of(&envelope) {
                Some(meta) => {
                    let path = snap::snapshot_path(&up.snapshots, meta);
                    match up
                        .snapshots
                        .open_reader(&path)
                        .and_then(|r| r.read_to_end())
                    {
                        Ok(bytes) => Some(Bytes::from(bytes)),
                        Err(_) => continue,
                    }
                }
                None => None,
            };
            ctx.events.send.push((envelope, payload));
        }
    }

    /// Starts a WAL batch of everything queued when none runs and some job
    /// needs an fsync; it completes after a drawn delay (group commit).
    fn start_batch(&mut self, now: u64, ctx: &mut TurnCtx<'_>) {
        let Some(up) = self.up.as_mut() else {
            return;
        };
        if up.batch.is_some() || !up.wal_queue.iter().any(|job| job.sync) {
            return;
        }
        let delay = (ctx.draw)(self.disk.max_delay + 1);
        up.batch = Some(Batch {
            jobs: std::mem::take(&mut up.wal_queue),
            due: now + delay,
        });
    }

    /// Writes and fsyncs the running batch, then releases what waited for it.
    fn complete_batch(&mut self, now: u64, ctx: &mut TurnCtx<'_>) -> Result<(), Stop> {
        let Some(batch) = self.up_mut()?.batch.take() else {
            return Ok(());
        };
        let armed = self.arm_fault("WAL write")?;
        let up = self.up_mut()?;
        let through = batch.jobs.last().map_or(0, |job| job.id);
        let mut term = Term(0);
        let written = (|| {
            for job in &batch.jobs {
                if !job.entries.is_empty() {
                    up.wal.append(&job.entries)?;
                }
                if let Some(hard_state) = job.hard_state {
                    term = term.max(hard_state.term);
                    up.wal.set_hard_state(hard_state)?;
                }
            }
            up.wal.sync()
        })();
        self.check_io(armed, "WAL batch", written)?;
        self.durable_term = self.durable_term.max(term);
        let up = self.up_mut()?;
        let released = up.core.on_persisted(through);
        if !up.wal_queue.iter().any(|job| job.sync) {
            // Only commit indexes queued meanwhile: buffered for the next fsync.
            let mut buffered = Ok(());
            for job in std::mem::take(&mut up.wal_queue) {
                if let Some(hard_state) = job.hard_state {
                    buffered = buffered.and_then(|()| up.wal.set_hard_state(hard_state));
                }
            }
            self.check_io(None, "WAL hard state", buffered)?;
        }
        self.send(released.send, ctx);
        // Like the driver: a compaction that waited for the WAL starts now.
        self.start_compaction(now, ctx)
    }

    /// Completes every WAL batch now, queued ones too (before an install,
    /// like the driver's `drain_wal`).
    fn drain(&mut self, now: u64, ctx: &mut TurnCtx<'_>) -> Result<(), Stop> {
        for _ in 0..1_000 {
            let up = self.up_mut()?;
            if up.batch.is_none() {
                if !up.wal_queue.iter().any(|job| job.sync) {
                    return Ok(());
                }
                up.batch = Some(Batch {
                    jobs: std::mem::take(&mut up.wal_queue),
                    due: 0,
                });
            }
            self.complete_batch(now, ctx)?;
        }
        Ok(())
    }
}

/// The chunks a leader streams for `meta` (offsets in order; the last one
/// empty, carrying the payload CRC), like `node::snapshot`'s sender.
fn stream_chunks(meta: &SnapshotMeta, payload: &Bytes) -> Vec<SnapshotChunk> {
    let mut chunks: Vec<SnapshotChunk> = payload
        .chunks(SNAPSHOT_CHUNK_BYTES)
        .scan(0u64, |offset, data| {
            let chunk = SnapshotChunk {
                meta: meta.clone(),
                offset: *offset,
                data: payload.slice_ref(data),
                done: false,
                payload_crc: 0,
            };
            *offset += data.len() as u64;
            Some(chunk)
        })
        .collect();
    chunks.push(SnapshotChunk {
        meta: meta.clone(),
        offset: payload.len() as u64,
        data: Bytes::new(),
        done: true,
        payload_crc: crc32c::crc32c(payload),
    });
    chunks
}
