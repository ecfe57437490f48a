//! Log replication (§5.3) and commitment (§5.4.2): AppendEntries on both
//! sides, heartbeats, and the leader's commit rule.
//!
//! Invariants: a follower only acknowledges entries that match the leader's log
//! through `match_index` (Log Matching, §5.3); a follower never truncates at or
//! below its commit index (asserted in the log view); the leader commits only by
//! counting replicas of an entry of its current term (§5.4.2, Figure 8), and
//! counts itself only for entries it has persisted (thesis §10.2.1).

use super::progress::Mode;
use super::types::{Entry, LogIndex, NodeId, Term};
use super::{Message, Raft, Role};

/// The fields of an AppendEntries request that the receiver acts on.
pub(super) struct AppendRequest {
    /// Index of the entry immediately preceding `entries`.
    pub(super) prev_log_index: LogIndex,
    /// Term of that entry.
    pub(super) prev_log_term: Term,
    /// Entries to store.
    pub(super) entries: Vec<Entry>,
    /// Leader's commit index.
    pub(super) leader_commit: LogIndex,
    /// ReadIndex round to echo.
    pub(super) read_ctx: u64,
}

/// The fields of an AppendEntries response that the leader acts on.
pub(super) struct AppendReply {
    /// The follower matched the request's previous entry.
    pub(super) success: bool,
    /// On success, last index known to match.
    pub(super) match_index: LogIndex,
    /// On failure, first index of the conflicting term (or follower's last + 1).
    pub(super) conflict_index: LogIndex,
    /// On failure, term of the follower's conflicting entry.
    pub(super) conflict_term: Option<Term>,
    /// Echo of the request's ReadIndex round.
    pub(super) read_ctx: u64,
}

impl Raft {
    /// Leader tick: step down without a quorum (check-quorum), time out
    /// snapshots and transfers, and (§5.2) send AppendEntries (heartbeats)
    /// during idle periods to keep followers from starting elections.
    pub(super) fn tick_leader(&mut self) {
        self.leader_ticks += 1;
        if self.check_quorum_lost() {
            return;
        }
        self.check_snapshot_timeouts();
        self.check_transfer_timeout();
        self.heartbeat_elapsed_ticks += 1;
        if self.heartbeat_elapsed_ticks >= self.config.heartbeat_interval_ticks {
            self.heartbeat_elapsed_ticks = 0;
            self.start_lease_round();
            self.broadcast_heartbeat();
        }
    }

    /// One AppendEntries to every follower now, carrying entries to those that
    /// are behind, plus whatever pipelining allows after it.
    pub(super) fn broadcast_heartbeat(&mut self) {
        for peer in self.peers() {
            if let Some(progress) = self.progress.get_mut(&peer) {
                progress.on_heartbeat();
            }
            self.send_append(peer, true);
            self.send_pending(peer);
        }
    }

    /// Sends the entries proposed since the last `ready()` to every follower
    /// whose progress allows it.
    pub(super) fn flush_replication(&mut self) {
        if !self.replicate_pending {
            return;
        }
        self.replicate_pending = false;
        for peer in self.peers() {
            self.send_pending(peer);
        }
    }

    /// Sends AppendEntries with entries to `to` while it is behind and its
    /// progress allows (one in Probe, up to the in-flight limit in Replicate).
    pub(super) fn send_pending(&mut self, to: NodeId) {
        loop {
            let Some(progress) = self.progress.get(&to) else {
                return;
            };
            if progress.next_index > self.log.last_index() || !progress.can_send_entries() {
                return;
            }
            if !self.send_append(to, false) {
                return;
            }
        }
    }

    /// Builds one AppendEntries for `to` from its `next_index` (§5.3), bounded
    /// by the per-message limits. With `allow_empty`, sends even without entries
    /// (a heartbeat). A follower that needs compacted entries gets the
    /// snapshot instead (§7); while it is outstanding, heartbeats are anchored
    /// at the snapshot's last entry. Returns whether a message was queued.
    pub(super) fn send_append(&mut self, to: NodeId, allow_empty: bool) -> bool {
        self.send_append_with(to, allow_empty, false)
    }

    /// [`Self::send_append`] that, with `past_nagle`, sends the entries after
    /// those in flight even when they would not fill a message: for the last
    /// message to a member whose progress is about to be dropped.
    pub(super) fn send_append_with(
        &mut self,
        to: NodeId,
        allow_empty: bool,
        past_nagle: bool,
    ) -> bool {
        let last_index = self.log.last_index();
        let Some(progress) = self.progress.get(&to) else {
            return false;
        };
        let next_index = progress.next_index.min(LogIndex(last_index.0 + 1));
        if matches!(progress.mode, Mode::Snapshot { .. }) {
            if allow_empty {
                self.send_heartbeat_at_snapshot(to);
            }
            return allow_empty;
        }
        if next_index < self.log.first_index() {
            self.send_snapshot(to);
            return true;
        }
        // Nagle's rule: while a message is unacknowledged, only a full one
        // (cut by the limits, more entries behind it) is pipelined after it;
        // the tail waits for the ack and then leaves with whatever was
        // proposed meanwhile. A follower thus gets one message, one WAL
        // batch and one ack per round trip when it keeps up, instead of one
        // per leader `ready()`, and a follower far behind still gets full
        // messages back to back. On the 2-core machine of
        // `bench/PERFORMANCE.md`, where each cross-thread wake-up costs tens
        // of microseconds, this took about 15% off the cluster's CPU per
        // write at 50 clients.
        //
        // When the rule may hold the entries back, they are counted first
        // and cloned only if they leave: a held-back tail used to be cloned
        // and dropped on every `ready()` (each clone and drop an atomic
        // operation on a buffer other threads share).
        let (max_entries, max_bytes) = (
            self.config.max_entries_per_append,
            self.config.max_bytes_per_append,
        );
        let entries = if !progress.can_send_entries() {
            Vec::new()
        } else if progress.awaits_ack() && !past_nagle {
            // Full when a limit cut it short of the log's end.
            let behind = last_index.0 + 1 - next_index.0;
            let count = self.log.slice_len(next_index, max_entries, max_bytes);
            if (count as u64) < behind {
                self.log.entries_from(next_index, count)
            } else {
                Vec::new()
            }
        } else {
            self.log.slice(next_index, max_entries, max_bytes)
        };
        if entries.is_empty() && !allow_empty {
            return false;
        }
        let prev_log_index = LogIndex(next_index.0 - 1);
        let prev_log_term = self.log.term_at(prev_log_index).unwrap_or_else(|| {
            panic!(
                "node {} term {}: next_index {} for {} beyond last_index {}",
                self.id, self.term, next_index, to, last_index
            )
        });
        let last_sent = entries.last().map(|e| e.index);
        let leader_commit = self.log.commit_index();
        if let Some(progress) = self.progress.get_mut(&to) {
            progress.next_index = next_index;
            progress.on_sent(last_sent);
            progress.commit_sent = leader_commit;
        }
        let message = Message::AppendEntries {
            term: self.term,
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
            // Any AppendEntries created after a read round started confirms
            // that round when acked in this term (§6.4).
            read_ctx: self.reads.current_round(),
        };
        self.send(to, message);
        true
    }

    /// An AppendEntries without entries whose previous entry is the last one
    /// covered by our snapshot: it keeps a follower that is installing the
    /// snapshot from timing out, and its ack shows when it caught up.
    fn send_heartbeat_at_snapshot(&mut self, to: NodeId) {
        let prev_log_index = LogIndex(self.log.first_index().0 - 1);
        let prev_log_term = self
            .log
            .term_at(prev_log_index)
            .expect("the term of the snapshot's last entry is kept");
        let leader_commit = self.log.commit_index();
        if let Some(progress) = self.progress.get_mut(&to) {
            progress.commit_sent = leader_commit;
        }
        let message = Message::AppendEntries {
            term: self.term,
            prev_log_index,
            prev_log_term,
            entries: Vec::new(),
            leader_commit,
            read_ctx: self.reads.current_round(),
        };
        self.send(to, message);
    }

    /// A message from `leader`, the leader of our term, arrived (§5.2): a
    /// candidate (or pre-candidate) recognizes it and steps down; a follower
    /// resets its election timer.
    pub(super) fn follow(&mut self, leader: NodeId) {
        if self.role == Role::Candidate || self.leader != Some(leader) {
            self.become_follower(self.term, Some(leader));
        } else {
            self.reset_election_timer();
        }
    }

    /// Receiver side of AppendEntries (Figure 2), after `validate.rs` and the
    /// term check in `step` (the request's term equals ours, and we do not
    /// lead it).
    pub(super) fn handle_append_entries(&mut self, from: NodeId, request: AppendRequest) {
        assert!(
            self.role != Role::Leader,
            "node {} term {}: AppendEntries from {} while leader of the same term \
             (election safety, §5.2)",
            self.id,
            self.term,
            from
        );
        self.follow(from);
        let AppendRequest {
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
            read_ctx,
        } = request;
        // `validate.rs` refused entries that are not consecutive after
        // `prev_log_index`, go backwards in term, or exceed our term, and any
        // that contradict our committed entries, before `step` got here.
        let reply = |raft: &mut Raft, success, match_index, conflict_index, conflict_term| {
            raft.send(
                from,
                Message::AppendEntriesResponse {
                    term: raft.term,
                    success,
                    match_index,
                    conflict_index,
                    conflict_term,
                    read_ctx,
                },
            );
        };
        // Figure 2, receiver rule 2: reject if the log has no entry at
        // prev_log_index whose term matches prev_log_term; the hint lets the
        // leader skip a whole term per round trip (§5.3). Entries we compacted
        // into a snapshot are committed, so they match the leader's (§5.4.3).
        let compacted = prev_log_index < LogIndex(self.log.first_index().0 - 1);
        match self.log.term_at(prev_log_index) {
            _ if compacted => {}
            None => {
                let conflict_index = LogIndex(self.log.last_index().0 + 1);
                reply(self, false, LogIndex(0), conflict_index, None);
                return;
            }
            Some(term) if term != prev_log_term => {
                let conflict_index = self.log.first_index_of_term_at(prev_log_index);
                reply(self, false, LogIndex(0), conflict_index, Some(term));
                return;
            }
            Some(_) => {}
        }
        // Rules 3–4: truncate a conflicting suffix, append what is new.
        let heartbeat = entries.is_empty();
        let match_index = LogIndex(prev_log_index.0 + entries.len() as u64);
        self.log.merge(self.term, entries);
        // Rule 5: commit_index = min(leader_commit, index of last new entry);
        // beyond match_index our log may still differ from the leader's.
        if self
            .log
            .commit_to(self.term, leader_commit.min(match_index))
        {
            self.on_commit_advanced();
        }
        // A heartbeat's ack claims the match only as far as it is durable
        // here. Such an ack depends on no write still in flight, so the node
        // may send it at once (`NodeCore::ready`) instead of behind the fsync
        // of the entries before it: a follower whose disk stalls for longer
        // than an election timeout still shows the leader it follows
        // (check-quorum) and confirms its read rounds. The entries' own acks
        // claim them once they are durable.
        let claimed = if heartbeat {
            match_index.min(self.log.persisted())
        } else {
            match_index
        };
        reply(self, true, claimed, LogIndex(0), None);
    }

    /// Highest log index known durable here (the persisted watermark).
    pub fn persisted_index(&self) -> LogIndex {
        self.log.persisted()
    }

    /// Leader side of an AppendEntries response of the current term.
    pub(super) fn handle_append_entries_response(&mut self, from: NodeId, reply: AppendReply) {
        if self.role != Role::Leader {
            return;
        }
        let last_index = self.log.last_index();
        let now = self.leader_ticks;
        let round = self.reads.current_round();
        let Some(progress) = self.progress.get_mut(&from) else {
            return;
        };
        // Any reply of our term shows `from` still follows us (§6.4, §6.2).
        // A round not started yet cannot have been acknowledged: a reply
        // claiming one is from a faulty peer and confirms nothing ahead.
        progress.read_ack = progress.read_ack.max(reply.read_ctx.min(round));
        progress.last_heard_tick = now;
        if reply.success {
            if reply.match_index > last_index {
                tracing::warn!(id = %self.id, peer = %from, "ack beyond our log dropped");
                return;
            }
            if progress.on_success(reply.match_index) {
                self.maybe_commit();
            }
            self.on_follower_progress(from);
            self.send_pending(from);
            // A commit index held back while this follower had entries in
            // flight goes now that none are, from the next `ready()` (after
            // any read round it starts, whose heartbeat then carries it).
            let held_back = self
                .progress
                .get(&from)
                .is_some_and(|p| !p.awaits_ack() && p.commit_sent < self.log.commit_index());
            if held_back {
                self.commit_broadcast_pending = true;
            }
        } else {
            // §5.3 fast backtracking: if we have entries of the follower's
            // conflicting term, retry just after our last one of that term;
            // otherwise skip the follower's whole run of that term.
            let hint = reply
                .conflict_term
                .and_then(|term| self.log.last_index_of_term(term))
                .map_or(reply.conflict_index, |i| LogIndex(i.0 + 1))
                .max(LogIndex(1));
            progress.on_reject(hint);
            // While a snapshot is outstanding, rejections of the heartbeats
            // anchored at it are expected; answering them would ping-pong.
            if progress.mode == Mode::Probe {
                self.send_append(from, true);
            }
        }
        self.confirm_reads();
    }

    /// §5.3/§5.4.2: advance commit_index to the highest index stored on a
    /// majority, but only if that entry is of the current term (Figure 8:
    /// counting replicas of an older term's entry is unsafe). The leader counts
    /// itself only up to what it has persisted.
    pub(super) fn maybe_commit(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        // Only the voters of the membership in effect count; the leader
        // counts itself only while it is one (a leader removing itself
        // commits its removal on the others' majority, §4.2.2).
        let persisted = self.log.persisted();
        let Some(majority_index) = self.quorum_value(|id| {
            if id == self.id {
                persisted
            } else {
                self.progress
                    .get(&id)
                    .map_or(LogIndex(0), |p| p.match_index)
            }
        }) else {
            return;
        };
        if (self.log.term_at(majority_index) == Some(self.term)
            || self.breaks_current_term_commit())
            && self.log.commit_to(self.term, majority_index)
        {
            self.on_commit_advanced();
        }
    }

    /// Hook for what waits on the commit index (reads queued until the
    /// leader's own-term commit).
    fn on_commit_advanced(&mut self) {
        if self.role == Role::Leader {
            self.commit_broadcast_pending = true;
            if self.on_membership_commit() {
                return;
            }
            self.release_reads_after_commit();
        }
    }

    /// Tells followers the new commit index, in an AppendEntries of their
    /// own unless one they get carries it (every AppendEntries carries
    /// `leader_commit`). A follower with entries in flight is told later,
    /// unless `all`: its ack is answered with its next entries, which carry
    /// it, or with the commit index alone once nothing is in flight
    /// (`handle_append_entries_response`); a lost ack is made up by the
    /// heartbeat. Under load the commit index thus rides on the entries
    /// instead of costing every follower a message, a wake-up and an ack
    /// per commit; an idle follower still learns it at once.
    pub(super) fn flush_commit_broadcast(&mut self, all: bool) {
        if !std::mem::take(&mut self.commit_broadcast_pending) {
            return;
        }
        let commit = self.log.commit_index();
        for peer in self.peers() {
            let due = self
                .progress
                .get(&peer)
                .is_some_and(|p| p.commit_sent < commit && (all || !p.awaits_ack()));
            if due {
                self.send_append(peer, true);
            }
        }
    }
}
