//! YAML config (serde-saphyr), defaults, validation with clear errors
//! (SKELETON: loading and validation are being written; the field names are fixed).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How a follower treats a write from a client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FollowerWrites {
    /// Forward to the leader over peer RPC and relay the reply (plain clients work).
    #[default]
    Forward,
    /// Answer `-MOVED 0 <leader resp addr>` (cluster-aware clients).
    Redirect,
}

/// One other cluster member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// The peer's node id.
    pub id: u64,
    /// Where the peer serves RESP (reported to clients, e.g. in MOVED).
    pub resp_addr: SocketAddr,
    /// Where the peer serves HTTP (peer RPC).
    pub http_addr: SocketAddr,
}

/// Raft timings and batch bounds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftConfig {
    /// Length of one logical tick.
    pub tick_ms: u64,
    /// Lower bound of the randomized election timeout, in ticks.
    pub election_timeout_min_ticks: u32,
    /// Upper bound (exclusive), in ticks.
    pub election_timeout_max_ticks: u32,
    /// Leader heartbeat interval, in ticks.
    pub heartbeat_interval_ticks: u32,
    /// Most entries in one AppendEntries.
    pub max_entries_per_append: usize,
    /// Most payload bytes in one AppendEntries.
    pub max_bytes_per_append: usize,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            tick_ms: 10,
            election_timeout_min_ticks: 30,
            election_timeout_max_ticks: 60,
            heartbeat_interval_ticks: 5,
            max_entries_per_append: 512,
            max_bytes_per_append: 1 << 20,
        }
    }
}

/// Bounds on client-facing resources.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Most simultaneous client connections (Redis: maxclients).
    pub max_clients: usize,
    /// Largest bulk string accepted from a client (Redis: proto-max-bulk-len).
    pub max_bulk_len_bytes: usize,
    /// Most elements in one request array.
    pub max_request_args: usize,
    /// Longest inline command line (Redis: 64 KiB).
    pub max_inline_len_bytes: usize,
    /// Proposals queued in the driver before clients get `-TRYAGAIN`.
    pub max_pending_proposals: usize,
    /// How long a request waits for a leader, a forward or a read index.
    pub request_timeout_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_clients: 10_000,
            max_bulk_len_bytes: 512 * 1024 * 1024,
            max_request_args: 1024 * 1024,
            max_inline_len_bytes: 64 * 1024,
            max_pending_proposals: 100_000,
            request_timeout_ms: 5_000,
        }
    }
}

/// A node's whole configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This node's id (non-zero, unique in the cluster).
    pub id: u64,
    /// Cluster name; peers from another cluster are rejected.
    #[serde(default = "default_cluster_id")]
    pub cluster_id: String,
    /// RESP listen address.
    #[serde(default = "default_resp_addr")]
    pub resp_addr: SocketAddr,
    /// HTTP listen address (peer RPC, /metrics, /status, /health).
    #[serde(default = "default_http_addr")]
    pub http_addr: SocketAddr,
    /// Where the WAL lives.
    pub data_dir: PathBuf,
    /// Every other member (empty for a single-node cluster).
    pub peers: Vec<PeerConfig>,
    /// What a follower does with writes.
    #[serde(default)]
    pub follower_writes: FollowerWrites,
    /// Raft timings.
    #[serde(default)]
    pub raft: RaftConfig,
    /// Client limits.
    #[serde(default)]
    pub limits: LimitsConfig,
}

fn default_cluster_id() -> String {
    "dkv".to_string()
}
fn default_resp_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 6379))
}
fn default_http_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7379))
}
