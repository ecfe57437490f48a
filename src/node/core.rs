//! The node core: every decision of the node's driver loop, as a synchronous,
//! deterministic state machine (issue 17, step 1).
//!
//! [`NodeCore`] owns the Raft core and the bookkeeping around it that decides
//! *what* happens and *when*: which messages may leave now and which only after
//! the local fsync, what goes to the WAL and whether it needs an fsync, which
//! entries are handed to apply, which client gets which answer, how many ticks
//! the clock owes the Raft core after a pause, until when the leader lease lets
//! reads skip the core, and when a snapshot is due. It does no I/O, reads no
//! clock (time is an argument: a [`Duration`] since an origin the caller
//! chose), spawns nothing and uses no global randomness; `make lint-io` checks
//! this file like `src/raft` and `src/kv`. Client reply handles are type
//! parameters (`W` for writes, `R` for reads): the tokio shell uses oneshot
//! senders, the unit tests plain numbers.
//!
//! The tokio driver (`driver.rs`) is the shell around it: it owns the WAL and
//! its blocking thread, the transport, the map, snapshot files and streams,
//! and only carries out what the core hands it, reporting completions back.
//!
//! # The contract: who calls what, and what may leave when
//!
//! Inputs (any order, any time): [`NodeCore::tick_to`] (the monotonic clock),
//! [`NodeCore::step`] (a peer message, after the shell checked that an
//! InstallSnapshot's data is here), [`NodeCore::propose_batch`],
//! [`NodeCore::read_index`], [`NodeCore::transfer_leader`],
//! [`NodeCore::propose_internal`] (housekeeping), and the completions below.
//!
//! While [`NodeCore::has_ready`], the shell calls [`NodeCore::ready`] and
//! carries out the returned [`CoreReady`] in this order:
//!
//! ```text
//! r = core.ready()?
//!   a. publish r.lease (a deadline, or none) before any message of r leaves:
//!      a transfer's TimeoutNow must not leave while direct reads trust the
//!      lease it ends
//!   b. r.snapshot: wait until every WAL write queued before ended, install
//!      the streamed data in place of the map, reset the WAL to it, then
//!      core.snapshot_installed(meta) (answers writes it covered)
//!   c. send r.send                                   (may leave now)
//!   d. hand r.persist to the WAL (queued behind earlier jobs, in order)
//!   e. apply r.apply in order, then core.applied(entries, outputs)
//!   f. answer r.reads once the map applied through their index
//! WAL durable through job J (everything queued up to J written + fsynced):
//!   p = core.on_persisted(J)  → send p.send (the held messages), answer
//!                               p.replies
//! ```
//!
//! The core keeps every message that depends on local durability (a vote, an
//! append acknowledgement, anything queued after a change of term or vote)
//! until [`NodeCore::on_persisted`] reports the job that made it durable: the
//! raft-rs `persisted_messages` / etcd-raft async-storage-writes split. Held
//! messages are released strictly in Ready order, so a later Ready with no WAL
//! work of its own still waits for the ones before it. The one exception is
//! an append acknowledgement that claims a match only through the persisted
//! watermark, in a term already durable: it depends on no write in flight
//! and leaves at once. The Raft core caps a heartbeat's acknowledgement at
//! the watermark, so a follower whose fsync stalls longer than an election
//! timeout (a snapshot's writeback sharing the disk) still answers the
//! leader's heartbeats: check-quorum keeps the leader, and read rounds
//! complete. A leader whose term and
//! vote did not change in a Ready sends its messages at once (thesis
//! §10.2.1): its AppendEntries and heartbeats acknowledge nothing, and it
//! counts its own log toward a commit only through `on_persisted`.
//!
//! `on_persisted` replaces the fabricated `Raft::advance` of the earlier
//! driver: the core remembers the last entry (index, term) of every job and
//! reports it to the Raft core with [`Raft::on_persisted`] once durable, so the
//! leader's own vote toward commitment moves only with its fsync.
//!
//! Apply (step e) does not wait for the local fsync: [`CoreReady::apply`]
//! holds only committed entries, which are on a majority's disks already. The
//! core checks this itself and refuses a Ready whose entries to apply run past
//! the commit index ([`CoreError::ApplyPastCommit`]); likewise a snapshot that
//! would be installed at or below what the map already applied
//! ([`CoreError::StaleSnapshot`]). Both are fatal: they mean the Raft core
//! broke a rule.
//!
//! Readies are pipelined: the shell need not wait for a job to be durable
//! before it calls `ready()` again, and it may write several jobs with one
//! fsync (group commit) and report only the last. A job whose `sync` is false
//! carries only a commit index: nothing waits for it, and the shell may write
//! it without an fsync (it rides along with the next one).
//!
//! # Time
//!
//! The Raft core's only clock is its tick count: election timers,
//! check-quorum and the leader lease count ticks. [`NodeCore::tick_to`] ticks
//! once per whole tick period of monotonic time since the last tick, at most
//! `max_catch_up_ticks` at once (past that, every timer and lease has run out
//! anyway), so `ticks * tick <= elapsed` holds after a pause (SIGSTOP, a VM
//! pause, CPU starvation) and every lease ends no later in real time than
//! its tick arithmetic says. [`CoreReady::lease`] / [`NodeCore::lease_until`]
//! turn the lease into a deadline on the same clock.
//!
//! Only the first [`TIMER_TICKS_PER_CATCH_UP`] ticks of a catch-up are
//! ordinary ticks; the rest count as this node's own stall
//! ([`Raft::skip_ticks`]): the leader's lease and timeouts age by them, but
//! check-quorum and the election timer do not, because the peers' messages
//! of that time are still waiting in the queue. A turn that applies one
//! slow entry (every replica applies the same one at about the same time)
//! would otherwise cost a leader election.
//!
//! # Who runs it
//!
//! The tokio driver (`driver.rs`) in the server, and the deterministic
//! simulator (`src/sim/node.rs`), which carries out the same contract
//! synchronously over the real `Wal` and snapshot store on `FaultyFs`, with
//! pipelined Readies and group commit, and restarts through the same
//! recovery (`node::open_locked_storage`). [`CoreFaults`] are the node rules
//! the simulator's self-test breaks on purpose (`src/sim/teeth.rs`).
//! Step 3 of issue 17 makes the write path cheaper around the same contract.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;

use super::{LocalWrite, RequestError, TransferError};
use crate::kv;
use crate::raft::{
    Entry, Envelope, HardState, LogIndex, Membership, Message, NodeId, Raft, Role, SnapshotMeta,
    Term,
};

/// Ticks of one catch-up that run Raft's timers; the driver owes one per
/// turn when punctual, two with the ticker's jitter. The rest of a
/// catch-up is the node's own stall (module docs, Time).
pub(crate) const TIMER_TICKS_PER_CATCH_UP: u64 = 2;

/// The core's settings (from the node's config).
#[derive(Clone, Debug)]
pub(crate) struct CoreConfig {
    /// Length of one Raft tick.
    pub tick: Duration,
    /// Most ticks owed after a pause that one catch-up delivers.
    pub max_catch_up_ticks: u64,
    /// Most writes waiting for their entry to apply.
    pub max_pending_proposals: usize,
    /// [`super::TestFault::EarlyAck`]: answer writes once persisted here.
    pub early_ack: bool,
    /// Take a snapshot after this many applied entries (0: never).
    pub snapshot_every_entries: u64,
    /// ... and once the entries applied since the last snapshot carry at
    /// least this percentage of that snapshot's bytes (0: no such condition).
    pub snapshot_log_growth_percent: u64,
    /// The snapshot the map was restored from at start: (index, term), or 0s.
    pub restored: (LogIndex, Term),
    /// The clock reading at which the Raft core's tick count starts.
    pub start: Duration,
}

/// Deliberate breaks of the node's own rules, for the simulator's self-test
/// (`sim/teeth.rs`): with one switched on, some seed must fail. Only tests can
/// switch them on ([`NodeCore::set_faults`]); the shell never does.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CoreFaults {
    /// Messages that depend on the local fsync (votes, acknowledgements)
    /// leave with their Ready, before the write is durable.
    pub send_before_persist: bool,
    /// Entries past the commit index are handed out for apply without the
    /// [`CoreError::ApplyPastCommit`] check.
    pub skip_apply_guard: bool,
    /// After a pause the clock ticks once and counts as caught up, so the
    /// lease outlives the time it stands for.
    pub no_tick_catch_up: bool,
    /// An InstallSnapshot at or below the commit index (which Raft
    /// acknowledges without installing) is installed anyway, over the newer
    /// log and map.
    pub install_stale_snapshot: bool,
}

/// Fatal: the Raft core handed out something that breaks a node rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// Entries beyond the commit index were handed out for apply.
    #[error("entry {index} was handed out for apply beyond the commit index {commit}")]
    ApplyPastCommit {
        /// The entry.
        index: LogIndex,
        /// The commit index then.
        commit: LogIndex,
    },
    /// A snapshot at or below what the map already applied would replace it.
    #[error("snapshot at {snapshot} handed out for install over a map applied through {applied}")]
    StaleSnapshot {
        /// The snapshot's last included index.
        snapshot: LogIndex,
        /// What the map applied.
        applied: LogIndex,
    },
}

/// One WAL write: entries (truncating a conflicting stored suffix) and the
/// hard state, in this order.
#[derive(Debug)]
pub(crate) struct PersistJob {
    /// Job ids count up from 1; [`NodeCore::on_persisted`] takes the last
    /// one a durable write covered.
    pub id: u64,
    /// Entries to append.
    pub entries: Vec<Entry>,
    /// Hard state to store.
    pub hard_state: Option<HardState>,
    /// Needs an fsync before anything waiting for it is released (new
    /// entries, term or vote); false for a commit index alone.
    pub sync: bool,
}

/// A confirmed read: its handle and the index the map must have applied.
pub(crate) type ReadDone<R> = (R, LogIndex);

/// What one [`NodeCore::ready`] asks of the shell (order in the module docs).
#[derive(Debug)]
pub(crate) struct CoreReady<R> {
    /// The lease deadline to publish before anything is sent (`None`: none).
    pub lease: Option<Duration>,
    /// The membership in effect changed: the new one, to re-point the
    /// transport before anything is sent (`Ready::membership`).
    pub membership: Option<Membership>,
    /// A snapshot to install before anything else.
    pub snapshot: Option<SnapshotMeta>,
    /// Messages that may leave now.
    pub send: Vec<Envelope>,
    /// The WAL write of this Ready.
    pub persist: Option<PersistJob>,
    /// Committed entries to apply, in order.
    pub apply: Vec<Entry>,
    /// Reads confirmed by a quorum.
    pub reads: Vec<ReadDone<R>>,
}

/// What a durable WAL write released.
pub(crate) struct Released<W> {
    /// Messages that waited for it, in the order they were queued.
    pub send: Vec<Envelope>,
    /// Writes answered by it (only under the `EarlyAck` test fault).
    pub replies: Vec<(W, LocalWrite)>,
}

impl<W> Default for Released<W> {
    fn default() -> Self {
        Released {
            send: Vec::new(),
            replies: Vec::new(),
        }
    }
}

/// A Ready's part that waits until its job, and every job before it, is durable.
#[derive(Debug)]
struct Held {
    /// Its job (`None`: it had none and waits only for the ones before it).
    job: Option<u64>,
    /// Its last entry, reported to the Raft core as persisted.
    last_entry: Option<(LogIndex, Term)>,
    /// The term of its hard state, durable once it is released.
    term: Option<Term>,
    /// Messages that depend on it (acks, votes).
    messages: Vec<Envelope>,
    /// `EarlyAck` only: the indexes of its entries.
    early: Vec<LogIndex>,
}

/// What [`NodeCore::snapshot_now`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SnapshotNow {
    /// Write a snapshot of the map as applied now, at (index, term).
    Start(LogIndex, Term),
    /// The newest snapshot already holds every applied entry.
    Current,
    /// One is being written.
    InFlight,
}

/// The node core; see the module docs.
pub(crate) struct NodeCore<W, R> {
    raft: Raft,
    config: CoreConfig,
    /// Clock reading the Raft core's tick count stands for.
    ticked_until: Duration,
    /// Writes waiting for their entry: the term proposed in, and the handle.
    pending_writes: BTreeMap<LogIndex, (Term, W)>,
    /// Reads waiting for a quorum round, by context.
    pending_reads: HashMap<u64, R>,
    next_read_ctx: u64,
    /// The last hard state handed to the WAL (`None` before the first).
    queued_hard_state: Option<HardState>,
    /// The term of the last hard state known durable (`None` before the
    /// first job that carried one was released).
    durable_term: Option<Term>,
    /// Id of the last job handed out.
    last_job: u64,
    /// Readies whose WAL work is not durable yet, oldest first.
    held: VecDeque<Held>,
    /// Index and term of the last entry applied (or of the restored snapshot).
    applied: (LogIndex, Term),
    /// Index of the newest snapshot taken or installed (0: none).
    last_snapshot_index: LogIndex,
    /// A local snapshot is being written.
    snapshot_in_flight: bool,
    /// Payload bytes of the entries applied since the last snapshot started.
    applied_bytes_since_snapshot: u64,
    /// Payload bytes of the last snapshot taken here (0: none since start).
    last_snapshot_bytes: u64,
    /// Role seen at the last [`NodeCore::notice_role_change`].
    last_role: Role,
    /// Rule breaks (tests only; all off otherwise).
    faults: CoreFaults,
    /// [`CoreFaults::install_stale_snapshot`]: the stale snapshot to hand out.
    stale_snapshot: Option<SnapshotMeta>,
}

impl<W, R> NodeCore<W, R> {
    /// A core around `raft`, restored as `config.restored` says.
    pub(crate) fn new(raft: Raft, config: CoreConfig) -> Self {
        NodeCore {
            raft,
            ticked_until: config.start,
            pending_writes: BTreeMap::new(),
            pending_reads: HashMap::new(),
            next_read_ctx: 1,
            queued_hard_state: None,
            durable_term: None,
            last_job: 0,
            held: VecDeque::new(),
            applied: config.restored,
            last_snapshot_index: config.restored.0,
            snapshot_in_flight: false,
            applied_bytes_since_snapshot: 0,
            last_snapshot_bytes: 0,
            last_role: Role::Follower,
            faults: CoreFaults::default(),
            stale_snapshot: None,
            config,
        }
    }

    /// Switches rule breaks on (the simulator's self-test only).
    #[cfg(test)]
    pub(crate) fn set_faults(&mut self, faults: CoreFaults) {
        self.faults = faults;
    }

    /// The Raft core, for status and progress queries.
    pub(crate) fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The clock reading the tick count stands for.
    pub(crate) fn ticked_until(&self) -> Duration {
        self.ticked_until
    }

    /// Ticks the Raft core once per whole tick period between the last tick
    /// and `now`, at most `max_catch_up_ticks` at once (module docs, Time).
    pub(crate) fn tick_to(&mut self, now: Duration) {
        let tick = self.config.tick.max(Duration::from_millis(1));
        let elapsed = now.saturating_sub(self.ticked_until);
        let owed = (elapsed.as_nanos() / tick.as_nanos()).min(u128::from(u64::MAX)) as u64;
        if owed == 0 {
            return;
        }
        if self.faults.no_tick_catch_up {
            // The rule break: one tick, and the clock counts as current.
            self.ticked_until = now;
            self.raft.tick();
            return;
        }
        let cap = self.config.max_catch_up_ticks.max(1);
        if owed > cap {
            // Everything the ticks measure has expired; skip the rest.
            self.ticked_until = now;
        } else {
            // `owed` whole periods (u32 is plenty: owed <= cap, a config value).
            self.ticked_until += tick * u32::try_from(owed).unwrap_or(u32::MAX);
        }
        // Past the few ticks a punctual driver owes, the time was this
        // node's own stall: the lease ages by it, the peers are not blamed
        // for it (module docs, Time).
        let owed = owed.min(cap);
        let timed = owed.min(TIMER_TICKS_PER_CATCH_UP);
        self.raft.skip_ticks(owed - timed);
        for _ in 0..timed {
            self.raft.tick();
        }
    }

    /// Writes waiting for their entry to apply (the proposal queue's depth).
    pub(super) fn pending_writes(&self) -> usize {
        self.pending_writes.len()
    }

    /// Until when (on the `tick_to` clock) reads may be served without the
    /// core: only a leader that has applied an entry of its own term and
    /// holds a lease grants one.
    pub(crate) fn lease_until(&self) -> Option<Duration> {
        let status = self.raft.status();
        let remaining = self.raft.lease_remaining_ticks()?;
        if status.role != Role::Leader || self.applied.1 != status.term {
            return None;
        }
        // The tick count stands for `ticked_until`; the lease ends when the
        // count reaches `remaining` more, which is no earlier than this.
        let ticks = u32::try_from(remaining).unwrap_or(u32::MAX);
        self.ticked_until
            .checked_add(self.config.tick.saturating_mul(ticks))
    }

    /// Feeds a peer message: the payloads are checked first (the Raft core
    /// never looks into them), then Raft's own rules. A refused message
    /// changes nothing; the refusal's kind and reason are returned.
    pub(crate) fn step(&mut self, envelope: Envelope) -> Result<(), (&'static str, String)> {
        if let Err(refusal) = super::validate::check_entry_payloads(&envelope) {
            return Err((refusal.kind(), refusal.to_string()));
        }
        if self.faults.install_stale_snapshot {
            if let Some(meta) = snapshot_of(&envelope) {
                if meta.last_included_index <= self.raft.status().commit_index {
                    self.stale_snapshot = Some(meta.clone());
                }
            }
        }
        match self.raft.step(envelope) {
            Ok(()) => Ok(()),
            Err(crate::raft::Error::Refused { refusal, .. }) => {
                Err((refusal.kind(), refusal.to_string()))
            }
            Err(e) => Err(("other", e.to_string())),
        }
    }

    /// Proposes a batch in order, stamped `now_ms` (the leader's wall clock:
    /// apply reads no clock), or answers all of it `NotLeader` (the caller
    /// then sends the whole batch elsewhere, keeping its order). Returns the
    /// answers due now; the others come from [`NodeCore::applied`].
    pub(crate) fn propose_batch(
        &mut self,
        ops: &[kv::Op],
        replies: Vec<W>,
        now_ms: u64,
    ) -> Vec<(W, LocalWrite)> {
        let status = self.raft.status();
        if status.role != Role::Leader || status.transferring_to.is_some() {
            // During a transfer the caller waits for the new leader.
            let leader = status.transferring_to.map_or(status.leader, |_| None);
            return replies
                .into_iter()
                .map(|reply| (reply, LocalWrite::NotLeader(leader)))
                .collect();
        }
        // One buffer for the batch's payloads (`Command::encode_batch`),
        // encoded from the caller's operations: it keeps them, to send
        // elsewhere should this node not be the leader.
        let payloads = kv::Command::encode_batch(now_ms, ops);
        let mut answers = Vec::new();
        for (payload, reply) in payloads.into_iter().zip(replies) {
            if let Some(answer) = self.propose(payload, reply) {
                answers.push(answer);
            }
        }
        answers
    }

    fn propose(&mut self, payload: Bytes, reply: W) -> Option<(W, LocalWrite)> {
        if self.pending_writes.len() >= self.config.max_pending_proposals {
            return Some((
                reply,
                LocalWrite::Done(Err(RequestError::TryAgain(
                    "too many writes in flight on the leader".to_string(),
                ))),
            ));
        }
        let answer = match self.raft.propose(payload) {
            Ok((index, term)) => {
                self.pending_writes.insert(index, (term, reply));
                return None;
            }
            Err(crate::raft::Error::NotLeader { leader }) => LocalWrite::NotLeader(leader),
            // Leadership is moving: the caller waits for the new leader and
            // sends the write there; it was certainly not appended here.
            Err(crate::raft::Error::TransferInProgress { .. }) => LocalWrite::NotLeader(None),
            Err(e @ crate::raft::Error::EntryTooLarge { .. }) => {
                LocalWrite::Done(Err(RequestError::Rejected(format!(
                    "{e}; raise raft.max_bytes_per_append to accept it"
                ))))
            }
            Err(e) => LocalWrite::Done(Err(RequestError::TryAgain(e.to_string()))),
        };
        Some((reply, answer))
    }

    /// Proposes the next membership (`raft::Raft::propose_membership`);
    /// `reply` is answered like a write's once the entry is applied (or
    /// overwritten by a new leader).
    ///
    /// # Errors
    /// Why the core refused it (the reply is dropped).
    pub(crate) fn propose_membership_for(
        &mut self,
        next: crate::raft::Membership,
        reply: W,
    ) -> Result<LogIndex, crate::raft::Error> {
        let index = self.propose_membership(next)?;
        let term = self.raft.status().term;
        self.pending_writes.insert(index, (term, reply));
        Ok(index)
    }

    /// Proposes an entry nobody waits for (housekeeping); its index, or why not.
    pub(crate) fn propose_internal(
        &mut self,
        command: &kv::Command,
    ) -> Result<LogIndex, crate::raft::Error> {
        self.raft.propose(command.encode()).map(|(index, _)| index)
    }

    /// Proposes the next membership (thesis §4.1, `raft/membership.rs`);
    /// its entry's index, or why not. Nobody waits on the entry: the caller
    /// watches [`Raft::membership_committed`] or the applied index.
    pub(crate) fn propose_membership(
        &mut self,
        membership: Membership,
    ) -> Result<LogIndex, crate::raft::Error> {
        self.raft.propose_membership(membership)
    }

    /// Starts a quorum round for a read, or answers it at once with the
    /// leader to ask instead.
    pub(crate) fn read_index(&mut self, reply: R) -> Result<(), (R, Option<NodeId>)> {
        let status = self.raft.status();
        if status.role != Role::Leader {
            return Err((reply, status.leader));
        }
        let ctx = self.next_read_ctx;
        self.next_read_ctx += 1;
        match self.raft.read_index(ctx) {
            Ok(()) => {
                self.pending_reads.insert(ctx, reply);
                Ok(())
            }
            Err(_) => Err((reply, self.raft.status().leader)),
        }
    }

    /// Forgets reads whose callers gave up (`abandoned` says which), so the
    /// map stays bounded while a leader cannot confirm reads.
    pub(crate) fn forget_reads(&mut self, mut abandoned: impl FnMut(&R) -> bool) {
        self.pending_reads.retain(|_, reply| !abandoned(reply));
    }

    /// Starts a leadership transfer (thesis §3.10) to `to`, or, when none is
    /// named, to the live voter of `members` whose log matches furthest
    /// ([`crate::raft::Raft::transfer_candidate`]), else the lowest other one.
    pub(crate) fn transfer_leader(
        &mut self,
        to: Option<NodeId>,
        members: &[NodeId],
    ) -> Result<NodeId, TransferError> {
        let status = self.raft.status();
        let me = status.id;
        if status.role != Role::Leader {
            return Err(TransferError::NotLeader {
                me,
                leader: status.leader,
            });
        }
        let target = match to {
            Some(to) if to == me || !members.contains(&to) => {
                return Err(TransferError::BadTarget(to));
            }
            Some(to) => to,
            None => self
                .raft
                .transfer_candidate()
                .filter(|id| members.contains(id))
                .or_else(|| members.iter().copied().filter(|&id| id != me).min())
                .ok_or(TransferError::NoPeers)?,
        };
        match self.raft.transfer_leader(target) {
            Ok(()) => Ok(target),
            Err(crate::raft::Error::NotLeader { leader }) => {
                Err(TransferError::NotLeader { me, leader })
            }
            Err(_) => Err(TransferError::BadTarget(target)),
        }
    }

    /// True when [`NodeCore::ready`] has something to hand out.
    pub(crate) fn has_ready(&self) -> bool {
        self.raft.has_ready() || self.stale_snapshot.is_some()
    }

    /// Hands out the next batch of work; see the module docs for the order
    /// in which the shell carries it out.
    pub(crate) fn ready(&mut self) -> Result<CoreReady<R>, CoreError> {
        let mut ready = self.raft.ready();
        let commit = self.raft.status().commit_index;
        if let Some(past) = ready.committed_entries.iter().find(|e| e.index > commit) {
            if !self.faults.skip_apply_guard {
                return Err(CoreError::ApplyPastCommit {
                    index: past.index,
                    commit,
                });
            }
        }
        if ready.snapshot.is_none() {
            // Only under `CoreFaults::install_stale_snapshot`: unchecked.
            ready.snapshot = self.stale_snapshot.take();
        } else if let Some(meta) = &ready.snapshot {
            if meta.last_included_index <= self.applied.0 {
                return Err(CoreError::StaleSnapshot {
                    snapshot: meta.last_included_index,
                    applied: self.applied.0,
                });
            }
        }
        let lease = self.lease_until();
        let mut send = Vec::new();
        let mut messages = ready.messages;
        // A leader whose term and vote did not change sends at once (module docs).
        if self.raft.status().role == Role::Leader
            && !term_or_vote_changed(self.queued_hard_state, ready.hard_state)
        {
            send = std::mem::take(&mut messages);
        }
        let sync = must_sync(self.queued_hard_state, ready.hard_state, &ready.entries);
        if let Some(hard_state) = ready.hard_state {
            self.queued_hard_state = Some(hard_state);
        }
        if !self.held.is_empty() || sync {
            // An ack that claims only what is durable, in a term that is
            // durable, waits for nothing (module docs).
            let durable = self.raft.persisted_index();
            let (now, later): (Vec<_>, Vec<_>) = messages
                .into_iter()
                .partition(|e| claims_only_durable(e, durable, self.durable_term));
            send.extend(now);
            messages = later;
        }
        let mut held = Held {
            job: None,
            last_entry: ready.entries.last().map(|e| (e.index, e.term)),
            term: ready.hard_state.map(|h| h.term),
            messages,
            early: if self.config.early_ack {
                ready.entries.iter().map(|e| e.index).collect()
            } else {
                Vec::new()
            },
        };
        let persist = if ready.hard_state.is_some() || !ready.entries.is_empty() {
            self.last_job += 1;
            held.job = sync.then_some(self.last_job);
            Some(PersistJob {
                id: self.last_job,
                entries: ready.entries,
                hard_state: ready.hard_state,
                sync,
            })
        } else {
            None
        };
        if self.faults.send_before_persist {
            // The rule break: they leave before the write they depend on.
            send.append(&mut held.messages);
        }
        if held.job.is_none() && self.held.is_empty() {
            // Nothing it depends on is still being written.
            send.append(&mut held.messages);
        } else {
            self.held.push_back(held);
        }
        let reads = ready
            .read_states
            .iter()
            .filter_map(|read| {
                self.pending_reads
                    .remove(&read.ctx)
                    .map(|reply| (reply, read.index))
            })
            .collect();
        Ok(CoreReady {
            lease,
            membership: ready.membership,
            snapshot: ready.snapshot,
            send,
            persist,
            apply: ready.committed_entries,
            reads,
        })
    }

    /// The WAL is durable through job `through` (and every job before it):
    /// releases what waited for it, in order, and tells the Raft core.
    pub(crate) fn on_persisted(&mut self, through: u64) -> Released<W> {
        let mut released = Released::default();
        while self
            .held
            .front()
            .is_some_and(|held| held.job.is_none_or(|id| id <= through))
        {
            let Some(mut held) = self.held.pop_front() else {
                break;
            };
            for index in held.early {
                if let Some((_, reply)) = self.pending_writes.remove(&index) {
                    released
                        .replies
                        .push((reply, LocalWrite::Done(Ok(kv::Output::Ok))));
                }
            }
            released.send.append(&mut held.messages);
            if let Some(term) = held.term {
                self.durable_term = Some(term);
            }
            if let Some((index, term)) = held.last_entry {
                self.raft.on_persisted(index, term);
            }
        }
        released
    }

    /// The shell applied `entries` (handed out by `ready`) with `outputs`
    /// (`None` for a no-op): answers the writes proposed at those indexes.
    /// A write whose index now holds an entry of another term was
    /// overwritten by a new leader and never applies.
    pub(crate) fn applied(
        &mut self,
        entries: &[Entry],
        outputs: Vec<Option<kv::Output>>,
    ) -> Vec<(W, LocalWrite)> {
        let mut answers = Vec::new();
        for entry in entries {
            self.applied_bytes_since_snapshot = self
                .applied_bytes_since_snapshot
                .saturating_add(entry.data.len() as u64);
        }
        for (entry, output) in entries.iter().zip(outputs) {
            if let Some((term, reply)) = self.pending_writes.remove(&entry.index) {
                let outcome = match output {
                    Some(output) if term == entry.term => Ok(output),
                    _ => Err(RequestError::TryAgain(
                        "leadership changed before the write committed; it was not applied"
                            .to_string(),
                    )),
                };
                answers.push((reply, LocalWrite::Done(outcome)));
            }
        }
        if let Some(last) = entries.last() {
            self.applied = (last.index, last.term);
        }
        answers
    }

    /// Whether a local snapshot is due now; if so it counts as started at
    /// the applied (index, term) returned. Due when none is being written,
    /// `snapshot_every_entries` entries were applied since the last one, and
    /// those entries' payloads add up to `snapshot_log_growth_percent` of the
    /// last snapshot's bytes. A snapshot costs time in proportion to the
    /// whole state; the second condition (Redis's
    /// `auto-aof-rewrite-percentage`) keeps that cost in proportion to the
    /// writes since the last one, where a fixed count would make a large
    /// keyspace pay for a full snapshot every `snapshot_every_entries` writes
    /// (and a bulk load quadratic time).
    pub(crate) fn snapshot_due(&mut self) -> Option<(LogIndex, Term)> {
        let every = self.config.snapshot_every_entries;
        let (index, term) = self.applied;
        let grown = (self.applied_bytes_since_snapshot as u128) * 100
            >= (self.last_snapshot_bytes as u128)
                * (self.config.snapshot_log_growth_percent as u128);
        if every == 0
            || self.snapshot_in_flight
            || index.0.saturating_sub(self.last_snapshot_index.0) < every
            || !grown
        {
            return None;
        }
        Some(self.start_snapshot_at(index, term))
    }

    /// A snapshot asked for now (`SAVE`, `BGSAVE`, `BGREWRITEAOF`), whatever
    /// the counts say: started at the applied (index, term) unless one is
    /// being written or the newest one already holds everything applied.
    pub(crate) fn snapshot_now(&mut self) -> SnapshotNow {
        if self.snapshot_in_flight {
            return SnapshotNow::InFlight;
        }
        let (index, term) = self.applied;
        if index <= self.last_snapshot_index {
            return SnapshotNow::Current;
        }
        let (index, term) = self.start_snapshot_at(index, term);
        SnapshotNow::Start(index, term)
    }

    /// Counts a snapshot at (`index`, `term`) as started.
    fn start_snapshot_at(&mut self, index: LogIndex, term: Term) -> (LogIndex, Term) {
        self.snapshot_in_flight = true;
        self.last_snapshot_index = index;
        self.applied_bytes_since_snapshot = 0;
        (index, term)
    }

    /// A local snapshot was written and is durable: the Raft core compacts
    /// through `floor` (the newest retained snapshot; the WAL keeps more,
    /// `node::snapshot::Taken`). Returns the next
    /// snapshot to start, counted as started like [`NodeCore::snapshot_due`]'s,
    /// when enough entries were applied while this one was written: otherwise
    /// a node that goes idle meanwhile would stay a whole interval behind
    /// until its next write. `payload_bytes`, the snapshot's size, is what
    /// the next one's growth condition is measured against. Also returns the
    /// log entries compacted away, for the shell to free off its loop.
    #[must_use]
    pub(crate) fn snapshot_taken(
        &mut self,
        floor: SnapshotMeta,
        payload_bytes: u64,
    ) -> (Option<(LogIndex, Term)>, Vec<Entry>) {
        self.snapshot_in_flight = false;
        self.last_snapshot_bytes = payload_bytes;
        let compacted = self.raft.compact(floor);
        (self.snapshot_due(), compacted)
    }

    /// A local snapshot write failed (the shell stops the node).
    pub(crate) fn snapshot_failed(&mut self) {
        self.snapshot_in_flight = false;
    }

    /// The entries the Raft core keeps after its snapshot (for resetting the
    /// WAL when one is installed).
    pub(crate) fn entries_after_snapshot(&self) -> Vec<Entry> {
        self.raft.entries_after_snapshot()
    }

    /// The shell installed `meta` (step b): the map now stands at it. Writes
    /// proposed here at covered indexes (as a leader of an older term) cannot
    /// be matched to what committed there: their outcome is unknown.
    pub(crate) fn snapshot_installed(&mut self, meta: &SnapshotMeta) -> Vec<(W, LocalWrite)> {
        let index = meta.last_included_index;
        self.applied = (index, meta.last_included_term);
        self.last_snapshot_index = self.last_snapshot_index.max(index);
        self.applied_bytes_since_snapshot = 0;
        let kept = self
            .pending_writes
            .split_off(&LogIndex(index.0.saturating_add(1)));
        let covered = std::mem::replace(&mut self.pending_writes, kept);
        covered
            .into_values()
            .map(|(_, reply)| {
                (
                    reply,
                    LocalWrite::Done(Err(RequestError::OutcomeUnknown(
                        "leadership changed; the write may or may not have been applied"
                            .to_string(),
                    ))),
                )
            })
            .collect()
    }

    /// After any input: a leader that lost its role can no longer confirm
    /// its pending reads; they are returned with the leader to ask instead.
    /// Also returns the role change, if any (for logs).
    pub(crate) fn notice_role_change(&mut self) -> (Vec<(R, Option<NodeId>)>, Option<Role>) {
        let status = self.raft.status();
        let mut dropped = Vec::new();
        if self.last_role == Role::Leader && status.role != Role::Leader {
            dropped = self
                .pending_reads
                .drain()
                .map(|(_, reply)| (reply, status.leader))
                .collect();
        }
        let changed = (status.role != self.last_role).then_some(status.role);
        self.last_role = status.role;
        (dropped, changed)
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

/// Whether `envelope` depends on no WAL write in flight: an append
/// acknowledgement whose match is durable (`durable`: the persisted
/// watermark) and whose term is the durable one. The Raft core caps a
/// heartbeat's ack at the watermark so that it is one.
fn claims_only_durable(envelope: &Envelope, durable: LogIndex, durable_term: Option<Term>) -> bool {
    match envelope.message {
        Message::AppendEntriesResponse {
            term,
            success: true,
            match_index,
            ..
        } => match_index <= durable && Some(term) == durable_term,
        _ => false,
    }
}

/// Whether `next` changes the term or vote of the last queued hard state (or
/// nothing was queued yet).
fn term_or_vote_changed(synced: Option<HardState>, next: Option<HardState>) -> bool {
    match (synced, next) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(old), Some(new)) => old.term != new.term || old.voted_for != new.voted_for,
    }
}

/// Whether `envelope` is an InstallSnapshot (its data must be streamed first).
pub(crate) fn snapshot_of(envelope: &Envelope) -> Option<&SnapshotMeta> {
    match &envelope.message {
        Message::InstallSnapshot { meta, .. } => Some(meta),
        _ => None,
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
