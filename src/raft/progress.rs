//! Per-follower replication progress, kept by the leader only (Figure 2,
//! "volatile state on leaders": `next_index`, `match_index`).
//!
//! A follower is in one of three modes:
//! - `Probe`: we do not know where its log matches ours; at most one
//!   AppendEntries is outstanding, and each rejection moves `next_index` back by
//!   the follower's hint (a whole term per round trip).
//! - `Replicate`: it acked recently; `next_index` is optimistic and entries are
//!   pipelined, bounded by [`MAX_INFLIGHT_APPENDS`] unacknowledged messages;
//!   only full messages are pipelined (see `Raft::send_append`).
//! - `Snapshot`: it needs entries the leader has compacted (§7); an
//!   InstallSnapshot is outstanding and no entries are sent until it is
//!   answered or an election timeout passes (then back to `Probe`).
//!
//! Invariant: `match_index < next_index` (§5.3: next_index starts just past
//! the leader's log and never falls to or below what is known to match).

use std::collections::VecDeque;

use super::types::LogIndex;

/// Most unacknowledged AppendEntries with entries in flight to one follower.
pub const MAX_INFLIGHT_APPENDS: usize = 64;

/// How the leader currently replicates to one follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// One message at a time until the match point is found.
    Probe,
    /// Pipelined with an optimistic `next_index`.
    Replicate,
    /// Waiting for the snapshot ending at `pending_index` to be installed.
    Snapshot {
        /// `last_included_index` of the snapshot sent.
        pending_index: LogIndex,
        /// Leader tick at which it was sent (for the timeout).
        sent_tick: u64,
    },
}

/// What the leader knows about one follower.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    /// Highest index known replicated on the follower.
    pub(crate) match_index: LogIndex,
    /// Index of the next entry to send.
    pub(crate) next_index: LogIndex,
    /// Probe or pipelined replication.
    pub(crate) mode: Mode,
    /// In `Probe`: a message is outstanding (cleared by a reply or a heartbeat).
    pub(crate) probe_sent: bool,
    /// In `Replicate`: last index of each unacknowledged AppendEntries.
    inflight: VecDeque<LogIndex>,
    /// Highest ReadIndex round this follower acknowledged in the current term.
    pub(crate) read_ack: u64,
    /// Leader tick of the last message received from this follower in the
    /// current term (check-quorum, §6.2).
    pub(crate) last_heard_tick: u64,
    /// The `leader_commit` of the last AppendEntries sent to it.
    pub(crate) commit_sent: LogIndex,
}

impl Progress {
    /// A follower of a new leader whose log ends at `last_index` (§5.3:
    /// next_index is initialized to leader last log index + 1).
    /// `now` is the leader's tick count: a new leader gives every follower a
    /// full election timeout before check-quorum counts it as silent.
    pub(crate) fn new(last_index: LogIndex, now: u64) -> Progress {
        Progress {
            match_index: LogIndex(0),
            next_index: LogIndex(last_index.0 + 1),
            mode: Mode::Probe,
            probe_sent: false,
            inflight: VecDeque::new(),
            read_ack: 0,
            last_heard_tick: now,
            commit_sent: LogIndex(0),
        }
    }

    /// May another AppendEntries carrying entries be sent now?
    pub(crate) fn can_send_entries(&self) -> bool {
        match self.mode {
            Mode::Probe => !self.probe_sent,
            Mode::Replicate => self.inflight.len() < MAX_INFLIGHT_APPENDS,
            Mode::Snapshot { .. } => false,
        }
    }

    /// True while an AppendEntries with entries is unacknowledged in
    /// `Replicate`: its ack will be answered with another message (entries
    /// queued meanwhile, or the commit index).
    pub(crate) fn awaits_ack(&self) -> bool {
        self.mode == Mode::Replicate && !self.inflight.is_empty()
    }

    /// Records that entries up to `last_sent` left for the follower.
    pub(crate) fn on_sent(&mut self, last_sent: Option<LogIndex>) {
        match self.mode {
            Mode::Probe => self.probe_sent = true,
            Mode::Replicate => {
                if let Some(last) = last_sent {
                    self.next_index = LogIndex(last.0 + 1);
                    self.inflight.push_back(last);
                }
            }
            Mode::Snapshot { .. } => {}
        }
    }

    /// The follower acknowledged a match up to `index`. Returns true when
    /// `match_index` moved. Any success means the follower is reachable and
    /// its log is known, so replication becomes pipelined.
    pub(crate) fn on_success(&mut self, index: LogIndex) -> bool {
        let moved = index > self.match_index;
        if moved {
            self.match_index = index;
        }
        while self.inflight.front().is_some_and(|&i| i <= index) {
            self.inflight.pop_front();
        }
        match self.mode {
            Mode::Probe => {
                self.mode = Mode::Replicate;
                self.probe_sent = false;
                self.next_index = LogIndex(self.match_index.0 + 1);
            }
            Mode::Replicate => {
                self.next_index = self.next_index.max(LogIndex(self.match_index.0 + 1));
            }
            Mode::Snapshot { pending_index, .. } => {
                // An ack from before the snapshot leaves it outstanding; one
                // covering it shows the follower caught up another way.
                if self.match_index >= pending_index {
                    self.mode = Mode::Replicate;
                    self.next_index = LogIndex(self.match_index.0 + 1);
                }
            }
        }
        moved
    }

    /// The follower rejected an AppendEntries; `hint` is where to retry
    /// (computed from its conflict hint). Falls back to probing.
    pub(crate) fn on_reject(&mut self, hint: LogIndex) {
        if matches!(self.mode, Mode::Snapshot { .. }) {
            // Heartbeats keep flowing while the snapshot is outstanding; their
            // rejections say nothing new.
            return;
        }
        // Never move forward on a rejection (a stale reply may carry an old
        // hint) and never to or below what is known to match.
        let next = hint
            .min(self.next_index)
            .max(LogIndex(self.match_index.0 + 1));
        self.next_index = next;
        self.mode = Mode::Probe;
        self.probe_sent = false;
        self.inflight.clear();
    }

    /// A heartbeat interval passed: a lost probe must not stall the follower.
    pub(crate) fn on_heartbeat(&mut self) {
        self.probe_sent = false;
    }

    /// An InstallSnapshot ending at `pending_index` left at leader tick `now`.
    pub(crate) fn on_snapshot_sent(&mut self, pending_index: LogIndex, now: u64) {
        self.mode = Mode::Snapshot {
            pending_index,
            sent_tick: now,
        };
        self.probe_sent = false;
        self.inflight.clear();
    }

    /// The follower answered an InstallSnapshot for `index`: on success its log
    /// now holds everything through `index`. Either way, probe from there.
    pub(crate) fn on_snapshot_reply(&mut self, index: LogIndex, success: bool) {
        let Mode::Snapshot { pending_index, .. } = self.mode else {
            if success && index > self.match_index {
                // A late duplicate reply: still a valid match.
                self.on_success(index);
            }
            return;
        };
        if success {
            self.match_index = self.match_index.max(index);
        } else if index != pending_index {
            // A failure for another (older) snapshot: keep waiting.
            return;
        }
        self.mode = Mode::Probe;
        self.probe_sent = false;
        self.next_index = LogIndex(self.match_index.0 + 1);
    }

    /// Called every leader tick: an unanswered snapshot is given up after
    /// `timeout_ticks`, returning the follower to probing.
    pub(crate) fn check_snapshot_timeout(&mut self, now: u64, timeout_ticks: u64) {
        if let Mode::Snapshot { sent_tick, .. } = self.mode {
            if now.saturating_sub(sent_tick) >= timeout_ticks {
                self.mode = Mode::Probe;
                self.probe_sent = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Table of transitions: probe → replicate on success, replicate → probe on
    /// rejection, and the next_index clamps.
    #[test]
    fn progress_transitions_and_clamps() {
        let mut p = Progress::new(LogIndex(10), 0);
        assert_eq!(p.next_index, LogIndex(11));
        assert!(p.can_send_entries());
        p.on_sent(Some(LogIndex(11)));
        assert!(!p.can_send_entries(), "probe sends one at a time");
        p.on_reject(LogIndex(4));
        assert_eq!((p.mode, p.next_index), (Mode::Probe, LogIndex(4)));
        p.on_reject(LogIndex(9)); // stale hint: never move forward
        assert_eq!(p.next_index, LogIndex(4));
        assert!(p.on_success(LogIndex(7)));
        assert_eq!((p.mode, p.next_index), (Mode::Replicate, LogIndex(8)));
        for i in 0..MAX_INFLIGHT_APPENDS as u64 {
            assert!(p.can_send_entries());
            p.on_sent(Some(LogIndex(8 + i)));
        }
        assert!(!p.can_send_entries(), "in-flight limit reached");
        p.on_success(LogIndex(9));
        assert!(p.can_send_entries());
        assert!(
            !p.on_success(LogIndex(5)),
            "stale ack does not move match_index"
        );
        p.on_reject(LogIndex(3));
        assert_eq!(p.next_index, LogIndex(10), "never at or below match_index");
    }
}
