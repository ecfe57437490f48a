//! Black-box test harness for `dkv-server`.
//!
//! Owns: starting real server processes on loopback (free ports, configs and data
//! directories in a temp dir, one log file per node), observing them through
//! `GET /status`, fault injection (SIGKILL, SIGTERM, SIGSTOP/SIGCONT, restart on the
//! same data dir; with [`Cluster::start_with_proxies`], every directed peer link
//! through a controllable TCP proxy: partitions, bridges, blackholes, delays) and
//! clients (the `redis` crate, plus a raw RESP connection for malformed input).
//! Outside programs (client scripts, Sidekiq, redis-benchmark) run through
//! [`external`]: bounded runs, killed on drop, a missing one fails under CI.
//!
//! Fault testing (issue 6): [`nemesis`] (named, seeded fault schedules),
//! [`workload`] (recorded concurrent clients), [`history`] (models and checks on top
//! of [`lincheck`]) and [`chaos`] (one run: cluster + workload + nemesis + heal +
//! final reads + checks + report); [`queue`], [`lock`] and [`stream_chaos`] run
//! application patterns (a reliable list queue, locks, a stream consumer group)
//! under the same schedules.
//!
//! Must never: build the server (the binary comes from `DKV_SERVER_BIN` or `target/`),
//! wait without a bound, assert on wall-clock timings, or leave a process behind
//! (`Cluster` kills every node on drop, also while panicking, and every child gets
//! `PR_SET_PDEATHSIG` so it dies with the test process).
//!
//! Node indexes in this API are 0-based; node `i` has Raft id `i + 1`.
//!
//! Running: `DKV_SERVER_BIN=target/release/dkv-server cargo test -p dkv-integration --
//! --test-threads=2` (the Makefile sets the variable). `DKV_KEEP_LOGS=1` keeps each
//! cluster's temp dir (configs, data, `node<id>.log`); `DKV_TEST_RUST_LOG` overrides the
//! servers' `RUST_LOG=info`. Tests marked `#[ignore]` name the missing server feature;
//! run them with `-- --include-ignored`.

pub mod chaos;
pub mod client;
pub mod cluster;
pub mod external;
pub mod frames;
pub mod history;
pub mod http;
/// The linearizability checker shared with the simulator: `src/lincheck.rs` of the
/// `dkv` crate, compiled here from the same file (it uses only `std`), so this crate
/// does not depend on the whole server library building.
#[path = "../../src/lincheck.rs"]
pub mod lincheck;
pub mod lock;
pub mod nemesis;
pub mod process;
pub mod proxy;
pub mod queue;
pub mod redis_server;
pub mod resp;
pub mod rng;
pub mod status;
pub mod stream_chaos;
pub mod workload;

pub use chaos::{run_chaos, ChaosConfig, ChaosReport};
pub use client::{is_retryable, RetryClient};
pub use cluster::{ClientTlsPaths, Cluster, ClusterOptions, NodeConfig, PeerTlsPaths};
pub use nemesis::Schedule;
pub use process::{
    cli_binary, program_available, rss_bytes, run_until_exit, server_binary, status_field,
    ExitReport,
};
pub use proxy::{LinkMode, ProxyMesh};
pub use resp::{RawConn, Reply};
pub use status::{Role, Status};
