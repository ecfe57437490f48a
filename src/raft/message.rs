//! Messages between Raft peers (Figure 2's RPCs, carried one way each: a response
//! is a message of its own, so the transport is fire-and-forget).

use serde::{Deserialize, Serialize};

use super::types::{Entry, LogIndex, NodeId, SnapshotMeta, Term};

/// A message with its addressing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Sender.
    pub from: NodeId,
    /// Recipient.
    pub to: NodeId,
    /// The payload.
    pub message: Message,
}

/// Figure 2's RPCs and their replies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// RequestVote (§5.2, §5.4.1).
    RequestVote {
        /// Candidate's term.
        term: Term,
        /// Index of the candidate's last log entry.
        last_log_index: LogIndex,
        /// Term of the candidate's last log entry.
        last_log_term: Term,
        /// The election was started by the leader's `TimeoutNow` (leadership
        /// transfer, thesis §3.10): voters answer it even if they heard from a
        /// leader within the minimum election timeout.
        #[serde(default)]
        transfer: bool,
    },
    /// Reply to RequestVote.
    RequestVoteResponse {
        /// The voter's current term, for the candidate to update itself.
        term: Term,
        /// True means the candidate received the vote.
        vote_granted: bool,
    },
    /// Pre-vote (thesis §9.6): "would you vote for me in `term`?" asked before
    /// a real election. Neither side changes its term or vote because of it.
    PreVote {
        /// The term the sender would campaign in (its current term + 1).
        term: Term,
        /// Index of the sender's last log entry.
        last_log_index: LogIndex,
        /// Term of the sender's last log entry.
        last_log_term: Term,
    },
    /// Reply to PreVote.
    PreVoteResponse {
        /// When granted, the term asked about (so the answer is not taken as
        /// stale); when refused, the voter's current term.
        term: Term,
        /// True means the voter would grant a vote in that term.
        vote_granted: bool,
    },
    /// Leadership transfer (thesis §3.10): the leader tells a caught-up
    /// follower to start an election now, without pre-vote.
    TimeoutNow {
        /// Leader's term.
        term: Term,
    },
    /// InstallSnapshot (§7), metadata only: the driver streams the snapshot
    /// data to the follower out of band, in chunks, and delivers this message
    /// only once the follower's driver holds all of it.
    InstallSnapshot {
        /// Leader's term.
        term: Term,
        /// Which snapshot the data is.
        meta: SnapshotMeta,
    },
    /// Reply to InstallSnapshot.
    InstallSnapshotResponse {
        /// The follower's current term.
        term: Term,
        /// The `last_included_index` of the snapshot answered.
        last_included_index: LogIndex,
        /// True when the follower now holds the log through that index.
        success: bool,
    },
    /// AppendEntries (§5.3); with no entries it is the heartbeat (§5.2).
    AppendEntries {
        /// Leader's term.
        term: Term,
        /// Index of the entry immediately preceding `entries`.
        prev_log_index: LogIndex,
        /// Term of that entry.
        prev_log_term: Term,
        /// Entries to store (empty for a heartbeat).
        entries: Vec<Entry>,
        /// Leader's commit index.
        leader_commit: LogIndex,
        /// ReadIndex round this heartbeat confirms leadership for (0: none).
        read_ctx: u64,
    },
    /// Reply to AppendEntries.
    AppendEntriesResponse {
        /// The follower's current term.
        term: Term,
        /// True if the follower's log matched `prev_log_index`/`prev_log_term`.
        success: bool,
        /// On success, the last index now known to match the leader's log.
        match_index: LogIndex,
        /// On failure, fast backtracking hint: where the leader should retry from.
        conflict_index: LogIndex,
        /// On failure, the term of the follower's conflicting entry (if any).
        conflict_term: Option<Term>,
        /// Echo of the request's `read_ctx`.
        read_ctx: u64,
    },
}

impl Message {
    /// The sender's term carried in every message.
    pub fn term(&self) -> Term {
        match self {
            Message::RequestVote { term, .. }
            | Message::RequestVoteResponse { term, .. }
            | Message::AppendEntries { term, .. }
            | Message::AppendEntriesResponse { term, .. }
            | Message::PreVote { term, .. }
            | Message::PreVoteResponse { term, .. }
            | Message::TimeoutNow { term }
            | Message::InstallSnapshot { term, .. }
            | Message::InstallSnapshotResponse { term, .. } => *term,
        }
    }
}
