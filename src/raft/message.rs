//! Messages between Raft peers (Figure 2's RPCs, carried one way each: a response
//! is a message of its own, so the transport is fire-and-forget).

use serde::{Deserialize, Serialize};

use super::types::{Entry, LogIndex, NodeId, Term};

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
    },
    /// Reply to RequestVote.
    RequestVoteResponse {
        /// The voter's current term, for the candidate to update itself.
        term: Term,
        /// True means the candidate received the vote.
        vote_granted: bool,
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
            | Message::AppendEntriesResponse { term, .. } => *term,
        }
    }
}
