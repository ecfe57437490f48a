//! Metric names and handles, registered in one place.
//!
//! Names follow Prometheus conventions: units in the name, `_total` on counters.
//! The recorder is process-global (metrics-exporter-prometheus); [`install`] sets it
//! once and returns the handle `/metrics` renders from. Code elsewhere gets a
//! [`Metrics`] value and never looks metrics up by name.

pub mod alloc;

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Current role: 0 follower, 1 candidate, 2 leader.
pub const RAFT_ROLE: &str = "dkv_raft_role";
/// Current term.
pub const RAFT_TERM: &str = "dkv_raft_term";
/// Highest committed index.
pub const RAFT_COMMIT_INDEX: &str = "dkv_raft_commit_index";
/// Highest applied index.
pub const RAFT_APPLIED_INDEX: &str = "dkv_raft_applied_index";
/// Leader changes seen.
pub const RAFT_LEADER_CHANGES_TOTAL: &str = "dkv_raft_leader_changes_total";
/// Client proposals committed and applied on this node as leader.
pub const RAFT_PROPOSALS_COMMITTED_TOTAL: &str = "dkv_raft_proposals_committed_total";
/// Peer messages, forwarded writes and snapshot chunks refused by the
/// validation (`raft/validate.rs`, `node/validate.rs`), by `reason`.
pub const RAFT_PEER_INPUT_REFUSED_TOTAL: &str = "dkv_raft_peer_input_refused_total";
/// Driver stalls long enough to look like silence to Raft's timers
/// (`node/stall.rs`), by `kind`: `turn` (one turn ran long) or `late` (the
/// driver came to its clock late).
pub const DRIVER_STALLS_TOTAL: &str = "dkv_driver_stalls_total";
/// WAL fsync latency.
pub const WAL_FSYNC_DURATION_SECONDS: &str = "dkv_wal_fsync_duration_seconds";
/// WAL jobs (Ready persists) written by one fsync: the group commit's size.
pub const WAL_BATCH_JOBS: &str = "dkv_wal_batch_jobs";
/// Snapshots this node wrote, and how long each took.
pub const SNAPSHOT_DURATION_SECONDS: &str = "dkv_snapshot_duration_seconds";
/// Size of the newest snapshot this node wrote.
pub const SNAPSHOT_BYTES: &str = "dkv_snapshot_bytes";
/// Snapshots installed from the leader (InstallSnapshot).
pub const SNAPSHOTS_INSTALLED_TOTAL: &str = "dkv_snapshots_installed_total";
/// Snapshots streamed to followers, by `result`.
pub const SNAPSHOTS_SENT_TOTAL: &str = "dkv_snapshots_sent_total";
/// Writes waiting for their entry to apply on this node.
pub const PENDING_PROPOSALS: &str = "dkv_raft_pending_proposals";
/// Request/reply RPCs to a peer (forwarded writes, read indexes, snapshot
/// chunks), by `peer` and `rpc`.
pub const PEER_RPC_DURATION_SECONDS: &str = "dkv_peer_rpc_duration_seconds";
/// Those RPCs that failed, by `peer` and `rpc`.
pub const PEER_RPC_FAILURES_TOTAL: &str = "dkv_peer_rpc_failures_total";
/// Raft messages sent to a peer (on its message stream), by `peer`.
pub const PEER_MESSAGES_SENT_TOTAL: &str = "dkv_peer_messages_sent_total";
/// Raft messages dropped because a peer's queue was full, by `peer`.
pub const PEER_MESSAGES_DROPPED_TOTAL: &str = "dkv_peer_messages_dropped_total";
/// Message streams to a peer that ended in an error, by `peer`.
pub const PEER_STREAM_FAILURES_TOTAL: &str = "dkv_peer_stream_failures_total";
/// Commands by name and result.
pub const CACHE_COMMANDS_TOTAL: &str = "dkv_commands_total";
/// Open client connections.
pub const CACHE_CONNECTED_CLIENTS: &str = "dkv_connected_clients";
/// Keys in the map.
pub const CACHE_KEYS: &str = "dkv_keys";
/// Clients closed by a client limit, by `reason`: `output_hard`,
/// `output_soft`, `query_buffer`, `idle`, `maxmemory_clients`.
pub const CACHE_CLIENTS_CLOSED_TOTAL: &str = "dkv_clients_closed_total";

/// How a family is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (until the process restarts).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations in buckets.
    Histogram,
}

/// Every family the `metrics` recorder holds: name, kind and the HELP text
/// `/metrics` shows. The families computed at scrape time are in
/// `server/exposition.rs`.
pub const FAMILIES: &[(&str, Kind, &str)] = &[
    (
        RAFT_ROLE,
        Kind::Gauge,
        "Raft role of this node: 0 follower, 1 candidate, 2 leader.",
    ),
    (RAFT_TERM, Kind::Gauge, "Current Raft term of this node."),
    (
        RAFT_COMMIT_INDEX,
        Kind::Gauge,
        "Highest log index this node knows is committed.",
    ),
    (
        RAFT_APPLIED_INDEX,
        Kind::Gauge,
        "Highest log index applied to this node's keyspace.",
    ),
    (
        RAFT_LEADER_CHANGES_TOTAL,
        Kind::Counter,
        "Leader changes this node has seen.",
    ),
    (
        RAFT_PROPOSALS_COMMITTED_TOTAL,
        Kind::Counter,
        "Client write proposals committed and applied while this node led.",
    ),
    (
        RAFT_PEER_INPUT_REFUSED_TOTAL,
        Kind::Counter,
        "Peer messages, forwarded writes and snapshot chunks refused as invalid, by reason.",
    ),
    (
        DRIVER_STALLS_TOTAL,
        Kind::Counter,
        "Driver turns (kind=turn) or clock delays (kind=late) of at least a third of the minimum election timeout.",
    ),
    (
        PENDING_PROPOSALS,
        Kind::Gauge,
        "Client writes on this node waiting for their log entry to apply.",
    ),
    (
        WAL_FSYNC_DURATION_SECONDS,
        Kind::Histogram,
        "Duration of WAL fsyncs.",
    ),
    (
        WAL_BATCH_JOBS,
        Kind::Histogram,
        "WAL write jobs made durable by one fsync (group commit size).",
    ),
    (
        SNAPSHOT_DURATION_SECONDS,
        Kind::Histogram,
        "Duration of writing a snapshot of the keyspace on this node.",
    ),
    (
        SNAPSHOT_BYTES,
        Kind::Gauge,
        "Size of the newest snapshot this node wrote.",
    ),
    (
        SNAPSHOTS_INSTALLED_TOTAL,
        Kind::Counter,
        "Snapshots installed on this node from the leader (InstallSnapshot).",
    ),
    (
        SNAPSHOTS_SENT_TOTAL,
        Kind::Counter,
        "Snapshots streamed from this node to followers, by result.",
    ),
    (
        PEER_RPC_DURATION_SECONDS,
        Kind::Histogram,
        "Round trip of request/reply RPCs to a peer (forward, read_index, snapshot_chunk).",
    ),
    (
        PEER_RPC_FAILURES_TOTAL,
        Kind::Counter,
        "Request/reply RPCs to a peer that failed or timed out.",
    ),
    (
        PEER_MESSAGES_SENT_TOTAL,
        Kind::Counter,
        "Raft messages handed to a peer's message stream.",
    ),
    (
        PEER_MESSAGES_DROPPED_TOTAL,
        Kind::Counter,
        "Raft messages dropped because the peer's send queue was full.",
    ),
    (
        PEER_STREAM_FAILURES_TOTAL,
        Kind::Counter,
        "Message streams to a peer that ended in an error (the peer down or unreachable).",
    ),
    (
        CACHE_COMMANDS_TOTAL,
        Kind::Counter,
        "Client commands run on this node, by command and result.",
    ),
    (
        CACHE_CONNECTED_CLIENTS,
        Kind::Gauge,
        "Open client connections on this node.",
    ),
    (
        CACHE_KEYS,
        Kind::Gauge,
        "Keys in this node's keyspace, all databases.",
    ),
    (
        CACHE_CLIENTS_CLOSED_TOTAL,
        Kind::Counter,
        "Client connections closed by a client limit, by reason.",
    ),
];

/// Buckets (seconds) of the duration histograms other than fsync.
const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// Buckets of [`WAL_BATCH_JOBS`].
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// Installs the process-wide Prometheus recorder.
///
/// # Errors
/// When a recorder is already installed in this process.
pub fn install() -> Result<PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    use metrics_exporter_prometheus::Matcher;
    let full = |name: &str| Matcher::Full(name.to_string());
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            full(WAL_FSYNC_DURATION_SECONDS),
            &[
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ],
        )?
        .set_buckets_for_metric(full(WAL_BATCH_JOBS), BATCH_BUCKETS)?
        .set_buckets_for_metric(full(SNAPSHOT_DURATION_SECONDS), DURATION_BUCKETS)?
        .set_buckets_for_metric(full(PEER_RPC_DURATION_SECONDS), DURATION_BUCKETS)?
        .install_recorder()?;
    describe();
    Ok(handle)
}

/// Gives every family of [`FAMILIES`] its HELP text (with the installed
/// recorder; a no-op without one).
fn describe() {
    for &(name, kind, help) in FAMILIES {
        match kind {
            Kind::Counter => metrics::describe_counter!(name, help),
            Kind::Gauge => metrics::describe_gauge!(name, help),
            Kind::Histogram => metrics::describe_histogram!(name, help),
        }
    }
}

/// The node's metric handles.
#[derive(Clone)]
pub struct Metrics {
    /// [`RAFT_ROLE`].
    pub role: Gauge,
    /// [`RAFT_TERM`].
    pub term: Gauge,
    /// [`RAFT_COMMIT_INDEX`].
    pub commit_index: Gauge,
    /// [`RAFT_APPLIED_INDEX`].
    pub applied_index: Gauge,
    /// [`RAFT_LEADER_CHANGES_TOTAL`].
    pub leader_changes: Counter,
    /// [`RAFT_PROPOSALS_COMMITTED_TOTAL`].
    pub proposals_committed: Counter,
    /// [`WAL_FSYNC_DURATION_SECONDS`].
    pub wal_fsync: Histogram,
    /// [`WAL_BATCH_JOBS`].
    pub wal_batch_jobs: Histogram,
    /// [`SNAPSHOT_DURATION_SECONDS`].
    pub snapshot_duration: Histogram,
    /// [`SNAPSHOT_BYTES`].
    pub snapshot_bytes: Gauge,
    /// [`SNAPSHOTS_INSTALLED_TOTAL`].
    pub snapshots_installed: Counter,
    /// [`SNAPSHOTS_SENT_TOTAL`] with `result="ok"`.
    pub snapshots_sent_ok: Counter,
    /// [`SNAPSHOTS_SENT_TOTAL`] with `result="failed"`.
    pub snapshots_sent_failed: Counter,
    /// [`PENDING_PROPOSALS`].
    pub pending_proposals: Gauge,
    /// [`CACHE_CONNECTED_CLIENTS`].
    pub connected_clients: Gauge,
    /// [`CACHE_KEYS`].
    pub keys: Gauge,
    /// [`CACHE_CLIENTS_CLOSED_TOTAL`].
    pub clients_closed: ClientLimitCounters,
}

/// [`CACHE_CLIENTS_CLOSED_TOTAL`], one handle per reason.
#[derive(Clone)]
pub struct ClientLimitCounters {
    output_hard: Counter,
    output_soft: Counter,
    query_buffer: Counter,
    idle: Counter,
    evicted: Counter,
}

impl ClientLimitCounters {
    fn register() -> ClientLimitCounters {
        let reason = |r: &'static str| counter!(CACHE_CLIENTS_CLOSED_TOTAL, "reason" => r);
        ClientLimitCounters {
            output_hard: reason("output_hard"),
            output_soft: reason("output_soft"),
            query_buffer: reason("query_buffer"),
            idle: reason("idle"),
            evicted: reason("maxmemory_clients"),
        }
    }

    /// Counts one client closed for `why`.
    pub fn count(&self, why: crate::server::client_limits::LimitClose) {
        use crate::server::client_limits::LimitClose;
        match why {
            LimitClose::OutputHard => &self.output_hard,
            LimitClose::OutputSoft => &self.output_soft,
            LimitClose::QueryBuffer => &self.query_buffer,
            LimitClose::Idle => &self.idle,
            LimitClose::Evicted => &self.evicted,
        }
        .increment(1);
    }
}

impl Metrics {
    /// Registers every handle (with the installed recorder, or a no-op one).
    pub fn new() -> Metrics {
        Metrics {
            role: gauge!(RAFT_ROLE),
            term: gauge!(RAFT_TERM),
            commit_index: gauge!(RAFT_COMMIT_INDEX),
            applied_index: gauge!(RAFT_APPLIED_INDEX),
            leader_changes: counter!(RAFT_LEADER_CHANGES_TOTAL),
            proposals_committed: counter!(RAFT_PROPOSALS_COMMITTED_TOTAL),
            wal_fsync: histogram!(WAL_FSYNC_DURATION_SECONDS),
            wal_batch_jobs: histogram!(WAL_BATCH_JOBS),
            snapshot_duration: histogram!(SNAPSHOT_DURATION_SECONDS),
            snapshot_bytes: gauge!(SNAPSHOT_BYTES),
            snapshots_installed: counter!(SNAPSHOTS_INSTALLED_TOTAL),
            snapshots_sent_ok: counter!(SNAPSHOTS_SENT_TOTAL, "result" => "ok"),
            snapshots_sent_failed: counter!(SNAPSHOTS_SENT_TOTAL, "result" => "failed"),
            pending_proposals: gauge!(PENDING_PROPOSALS),
            connected_clients: gauge!(CACHE_CONNECTED_CLIENTS),
            keys: gauge!(CACHE_KEYS),
            clients_closed: ClientLimitCounters::register(),
        }
    }

    /// The counter for one command name (lower case) and result (`ok` or `error`).
    /// Callers register each pair once and keep the handle.
    pub fn command(name: &'static str, result: &'static str) -> Counter {
        counter!(CACHE_COMMANDS_TOTAL, "cmd" => name, "result" => result)
    }

    /// The counter of refused peer input for one `reason` (a short stable
    /// name such as `term_too_far`).
    pub fn peer_input_refused(reason: &'static str) -> Counter {
        counter!(RAFT_PEER_INPUT_REFUSED_TOTAL, "reason" => reason)
    }

    /// The counter of driver stalls of one `kind` (`turn` or `late`).
    pub fn driver_stalls(kind: &'static str) -> Counter {
        counter!(DRIVER_STALLS_TOTAL, "kind" => kind)
    }
}

/// One peer's transport handles (registered when the transport starts).
#[derive(Clone)]
pub struct PeerMetrics {
    /// [`PEER_MESSAGES_SENT_TOTAL`].
    pub sent: Counter,
    /// [`PEER_MESSAGES_DROPPED_TOTAL`].
    pub dropped: Counter,
    /// [`PEER_STREAM_FAILURES_TOTAL`].
    pub stream_failures: Counter,
    /// [`PEER_RPC_DURATION_SECONDS`] and [`PEER_RPC_FAILURES_TOTAL`], per
    /// [`PeerRpc`].
    rpcs: [(Histogram, Counter); 3],
}

/// The request/reply RPCs between nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerRpc {
    /// A follower's client writes sent to the leader.
    Forward,
    /// A follower asking the leader for a read index.
    ReadIndex,
    /// One chunk of a snapshot streamed to a follower.
    SnapshotChunk,
}

impl PeerRpc {
    fn label(self) -> &'static str {
        match self {
            PeerRpc::Forward => "forward",
            PeerRpc::ReadIndex => "read_index",
            PeerRpc::SnapshotChunk => "snapshot_chunk",
        }
    }
}

impl PeerMetrics {
    /// Registers the handles of the peer with Raft id `peer`.
    pub fn new(peer: u64) -> PeerMetrics {
        let id = peer.to_string();
        let rpc = |rpc: PeerRpc| {
            let labels = [("peer", id.clone()), ("rpc", rpc.label().to_string())];
            (
                histogram!(PEER_RPC_DURATION_SECONDS, &labels),
                counter!(PEER_RPC_FAILURES_TOTAL, &labels),
            )
        };
        PeerMetrics {
            sent: counter!(PEER_MESSAGES_SENT_TOTAL, "peer" => id.clone()),
            dropped: counter!(PEER_MESSAGES_DROPPED_TOTAL, "peer" => id.clone()),
            stream_failures: counter!(PEER_STREAM_FAILURES_TOTAL, "peer" => id.clone()),
            rpcs: [
                rpc(PeerRpc::Forward),
                rpc(PeerRpc::ReadIndex),
                rpc(PeerRpc::SnapshotChunk),
            ],
        }
    }

    /// Records one finished RPC: its round trip, and whether it failed.
    pub fn rpc_done(&self, rpc: PeerRpc, elapsed: std::time::Duration, ok: bool) {
        let (duration, failures) = &self.rpcs[rpc as usize];
        duration.record(elapsed.as_secs_f64());
        if !ok {
            failures.increment(1);
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
