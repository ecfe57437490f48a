//! Snapshots and log compaction (§7): the driver compacts the log behind a
//! snapshot of its state machine; the leader sends InstallSnapshot to a
//! follower that needs compacted entries; the follower installs it.
//!
//! The core never sees snapshot data: `InstallSnapshot` carries only the
//! metadata, and the driver streams the data out of band (ARCHITECTURE.md).
//!
//! Invariants: a snapshot only ever covers committed (and applied) entries; a
//! follower installs a snapshot only beyond its commit index, so committed
//! entries are never replaced; an installed snapshot is handed out in a
//! `Ready` before any entry committed after it.

use super::types::{Entry, LogIndex, NodeId, SnapshotMeta};
use super::{Message, Raft, Role};

impl Raft {
    /// The driver saved a snapshot of its state machine through
    /// `meta.last_included_index` (which it has applied): the core drops the
    /// log entries it covers (§7), keeping `meta` to send to followers that
    /// fall behind it. A snapshot not newer than the current one is ignored.
    /// Returns the entries dropped: freeing a long log's payloads takes long
    /// enough to stall a node's loop, so the driver frees them elsewhere.
    ///
    /// # Panics
    /// When `meta.last_included_index` is beyond `last_applied` or the commit
    /// index, or `meta.last_included_term` differs from the log's term at that
    /// index (the driver snapshotted something the core did not hand out).
    pub fn compact(&mut self, meta: SnapshotMeta) -> Vec<Entry> {
        let index = meta.last_included_index;
        let dropped = self.log.compact(self.term, meta);
        if dropped.is_some() {
            tracing::info!(id = %self.id, term = %self.term, index = %index, "log compacted");
        }
        dropped.unwrap_or_default()
    }

    /// The entries after the snapshot that the log still holds: after
    /// installing a snapshot, the matching suffix the core kept (§7), which
    /// the driver writes again after resetting its stored log to the
    /// snapshot, so the store never holds less than the core counts on.
    pub fn entries_after_snapshot(&self) -> Vec<Entry> {
        self.log
            .slice(self.log.first_index(), usize::MAX, usize::MAX)
    }

    /// Leader: sends the latest snapshot to `to`, whose `next_index` fell
    /// below the first entry still in the log, and stops appends to it until
    /// it answers or an election timeout passes.
    pub(super) fn send_snapshot(&mut self, to: NodeId) {
        let Some(mut meta) = self.log.snapshot().cloned() else {
            panic!(
                "node {} term {}: follower {} needs compacted entries but there is no snapshot \
                 (first index {})",
                self.id,
                self.term,
                to,
                self.log.first_index()
            );
        };
        // A snapshot restored from a backup names no membership: it is the
        // bootstrap one, which the follower may not know.
        meta.membership = self.membership_at(meta.last_included_index);
        let now = self.leader_ticks;
        if let Some(progress) = self.progress.get_mut(&to) {
            progress.on_snapshot_sent(meta.last_included_index, now);
        }
        tracing::info!(id = %self.id, term = %self.term, peer = %to,
            index = %meta.last_included_index, "sending snapshot");
        self.send(
            to,
            Message::InstallSnapshot {
                term: self.term,
                meta,
            },
        );
    }

    /// Receiver side of InstallSnapshot, after the term check in `step` (the
    /// request's term equals ours). §7: a snapshot beyond the commit index
    /// replaces the log (a matching suffix after it is kept); an older one is
    /// acknowledged without installing.
    pub(super) fn handle_install_snapshot(&mut self, from: NodeId, meta: SnapshotMeta) {
        assert!(
            self.role != Role::Leader,
            "node {} term {}: InstallSnapshot from {} while leader of the same term \
             (election safety, §5.2)",
            self.id,
            self.term,
            from
        );
        self.follow(from);
        let index = meta.last_included_index;
        if index > self.log.commit_index() {
            let kept_suffix = self.log.install_snapshot(self.term, meta);
            tracing::info!(id = %self.id, term = %self.term, leader = %from, index = %index,
                kept_suffix, "installing snapshot");
        }
        // The reply leaves in the Ready that hands out the snapshot, whose
        // installation the driver completes before sending (module docs).
        self.send(
            from,
            Message::InstallSnapshotResponse {
                term: self.term,
                last_included_index: index,
                success: true,
            },
        );
    }

    /// Leader side of an InstallSnapshot response of the current term.
    pub(super) fn handle_install_snapshot_response(
        &mut self,
        from: NodeId,
        index: LogIndex,
        success: bool,
    ) {
        if self.role != Role::Leader {
            return;
        }
        let now = self.leader_ticks;
        let last_index = self.log.last_index();
        let Some(progress) = self.progress.get_mut(&from) else {
            return;
        };
        progress.last_heard_tick = now;
        if success && index > last_index {
            tracing::warn!(id = %self.id, peer = %from, "snapshot ack beyond our log dropped");
            return;
        }
        progress.on_snapshot_reply(index, success);
        self.maybe_commit();
        self.on_follower_progress(from);
        self.send_append(from, true);
        self.send_pending(from);
    }

    /// Leader tick: followers whose snapshot went unanswered for an election
    /// timeout go back to probing (the next heartbeat sends it again).
    pub(super) fn check_snapshot_timeouts(&mut self) {
        let now = self.leader_ticks;
        let timeout = u64::from(self.config.election_timeout_min_ticks);
        for progress in self.progress.values_mut() {
            progress.check_snapshot_timeout(now, timeout);
        }
    }
}
