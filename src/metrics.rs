//! Metric names and handles, registered in one place.
//!
//! Names follow Prometheus conventions: units in the name, `_total` on counters.
//! The recorder is process-global (metrics-exporter-prometheus); [`install`] sets it
//! once and returns the handle `/metrics` renders from. Code elsewhere gets a
//! [`Metrics`] value and never looks metrics up by name.

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Current role: 0 follower, 1 candidate, 2 leader.
pub const RAFT_ROLE: &str = "raft_role";
/// Current term.
pub const RAFT_TERM: &str = "raft_term";
/// Highest committed index.
pub const RAFT_COMMIT_INDEX: &str = "raft_commit_index";
/// Highest applied index.
pub const RAFT_APPLIED_INDEX: &str = "raft_applied_index";
/// Leader changes seen.
pub const RAFT_LEADER_CHANGES_TOTAL: &str = "raft_leader_changes_total";
/// Client proposals committed and applied on this node as leader.
pub const RAFT_PROPOSALS_COMMITTED_TOTAL: &str = "raft_proposals_committed_total";
/// Peer messages, forwarded writes and snapshot chunks refused by the
/// validation (`raft/validate.rs`, `node/validate.rs`), by `reason`.
pub const RAFT_PEER_INPUT_REFUSED_TOTAL: &str = "raft_peer_input_refused_total";
/// WAL fsync latency.
pub const WAL_FSYNC_DURATION_SECONDS: &str = "wal_fsync_duration_seconds";
/// Commands by name and result.
pub const CACHE_COMMANDS_TOTAL: &str = "cache_commands_total";
/// Open client connections.
pub const CACHE_CONNECTED_CLIENTS: &str = "cache_connected_clients";
/// Keys in the map.
pub const CACHE_KEYS: &str = "cache_keys";
/// Clients closed by a client limit, by `reason`: `output_hard`,
/// `output_soft`, `query_buffer`, `idle`, `maxmemory_clients`.
pub const CACHE_CLIENTS_CLOSED_TOTAL: &str = "cache_clients_closed_total";

/// Installs the process-wide Prometheus recorder.
///
/// # Errors
/// When a recorder is already installed in this process.
pub fn install() -> Result<PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(WAL_FSYNC_DURATION_SECONDS.to_string()),
            &[
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ],
        )?
        .install_recorder()
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
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
