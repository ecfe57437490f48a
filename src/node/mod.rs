//! The tokio driver joining raft + store + transport + kv (SKELETON: the driver
//! is being written; the handle API below is fixed).

use std::sync::{Arc, RwLock};

use crate::kv;
use crate::raft::{LogIndex, NodeId, Role, Term};

/// Why a client request did not complete normally. Each maps to one RESP error
/// text ([`RequestError::resp_text`]); clients retry some of them on their own, so
/// `NoLeader` and `TryAgain` are used only when the command was certainly not
/// appended to the log.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    /// No leader was known within the bounded wait; the command was not appended.
    #[error("CLUSTERDOWN No raft leader")]
    NoLeader,
    /// The command was certainly not appended (e.g. a full proposal queue).
    #[error("TRYAGAIN {0}")]
    TryAgain(String),
    /// The command may or may not have been applied (leadership lost after the
    /// append, a forward that timed out).
    #[error("ERR outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// The node is still replaying its WAL.
    #[error("LOADING dkv is loading the dataset in memory")]
    Loading,
    /// The node is shutting down.
    #[error("ERR server is shutting down")]
    ShuttingDown,
}

impl RequestError {
    /// The RESP error text (without the leading `-`).
    pub fn resp_text(&self) -> String {
        self.to_string()
    }
}

/// What the node shows about itself (INFO, /status, metrics).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NodeStatus {
    /// This node.
    pub id: NodeId,
    /// Current role.
    pub role: Role,
    /// Current term.
    pub term: Term,
    /// Leader of the current term, if known.
    pub leader: Option<NodeId>,
    /// The leader's RESP address, if known.
    pub leader_resp_addr: Option<String>,
    /// Highest committed index.
    pub commit_index: LogIndex,
    /// Highest applied index.
    pub last_applied: LogIndex,
    /// Last index in the log.
    pub last_log_index: LogIndex,
    /// True while the WAL is replayed at start.
    pub loading: bool,
    /// Number of leader changes seen by this node since start.
    pub leader_changes: u64,
}

/// A cheap, cloneable handle for client-facing code.
#[derive(Clone)]
pub struct NodeHandle {
    db: Arc<RwLock<kv::Db>>,
}

impl NodeHandle {
    /// Proposes a write (forwarded to the leader when this node is a follower) and
    /// returns the output computed by apply.
    ///
    /// # Errors
    /// See [`RequestError`].
    pub async fn write(&self, op: kv::Op) -> Result<kv::Output, RequestError> {
        let _ = op;
        todo!()
    }

    /// A linearizable read: waits for a ReadIndex and for apply to reach it, then
    /// runs `f` on the map.
    ///
    /// # Errors
    /// See [`RequestError`].
    pub async fn read<R>(&self, f: impl FnOnce(&kv::Db) -> R) -> Result<R, RequestError> {
        let _ = f;
        todo!()
    }

    /// Runs `f` on the local map without any wait (stale reads, INFO keyspace).
    pub fn read_local<R>(&self, f: impl FnOnce(&kv::Db) -> R) -> R {
        let db = self.db.read().unwrap_or_else(|e| e.into_inner());
        f(&db)
    }

    /// The node's current status.
    pub fn status(&self) -> NodeStatus {
        todo!()
    }
}
