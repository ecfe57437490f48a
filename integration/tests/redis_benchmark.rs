//! `redis-benchmark`'s default test list (no `-t`) against every node of a
//! 3-node cluster, leader and followers: each test must run to the end with no
//! error reply. The run is small (`-n 2000 -c 10`); redis-benchmark 7 stops at
//! the first error reply (`Error from server: ...`, exit status 1), and
//! `--csv` gives one line per finished test: the test fails on a non-zero
//! exit, on any line that is not a result, or if a test of the list is
//! missing. Figures (requests per second) are printed, never asserted.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Result};
use dkv_integration::external::{run_bounded, tool_missing};
use dkv_integration::{program_available, Cluster};

/// One redis-benchmark run against one node.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// The tests `redis-benchmark` 7.0 runs without `-t`, as `--csv` names them.
const DEFAULT_TESTS: &[&str] = &[
    "PING_INLINE",
    "PING_MBULK",
    "SET",
    "GET",
    "INCR",
    "LPUSH",
    "RPUSH",
    "LPOP",
    "RPOP",
    "SADD",
    "HSET",
    "SPOP",
    "ZADD",
    "ZPOPMIN",
    "LPUSH (needed to benchmark LRANGE)",
    "LRANGE_100 (first 100 elements)",
    "LRANGE_300 (first 300 elements)",
    "LRANGE_500 (first 500 elements)",
    "LRANGE_600 (first 600 elements)",
    "MSET (10 keys)",
];

/// Runs the default list against `addr`; returns `(test, requests per second)`
/// in output order.
async fn bench(addr: SocketAddr) -> Result<Vec<(String, f64)>> {
    let mut c = Command::new("redis-benchmark");
    c.args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(["-n", "2000", "-c", "10", "-q", "--csv"]);
    let out = run_bounded(c, &format!("redis-benchmark against {addr}"), RUN_TIMEOUT).await?;
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for line in out.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with("\"test\",") {
            continue;
        }
        // "NAME","rps","avg",...; a test name may hold a comma-free space and parens.
        let fields: Vec<&str> = line.split("\",\"").collect();
        let name = fields.first().map(|f| f.trim_start_matches('"'));
        let rps = fields.get(1).and_then(|r| r.parse::<f64>().ok());
        match (name, rps, fields.len()) {
            (Some(name), Some(rps), 8) => rows.push((name.to_string(), rps)),
            _ => problems.push(line.to_string()),
        }
    }
    if !problems.is_empty() {
        bail!(
            "redis-benchmark against {addr} printed errors or unexpected lines:\n{}\n--- full output ---\n{out}",
            problems.join("\n")
        );
    }
    let missing: Vec<&str> = DEFAULT_TESTS
        .iter()
        .copied()
        .filter(|t| !rows.iter().any(|(name, _)| name == t))
        .collect();
    if !missing.is_empty() {
        bail!("redis-benchmark against {addr}: tests missing from the output: {missing:?}\n{out}");
    }
    Ok(rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_benchmark_default_tests_run_on_every_node() -> Result<()> {
    if !program_available("redis-benchmark", "--version") {
        return tool_missing("redis-benchmark is not installed (apt-get install redis-tools)");
    }
    let mut cluster = Cluster::start(3).await?;
    let leader = cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let mut order = vec![leader];
    order.extend((0..3).filter(|&i| i != leader));
    for node in order {
        let role = if node == leader { "leader" } else { "follower" };
        let rows = bench(cluster.resp_addr(node)).await?;
        let summary: Vec<String> = rows
            .iter()
            .map(|(name, rps)| format!("{}={rps:.0}", name.split(' ').next().unwrap_or(name)))
            .collect();
        println!(
            "node {node} ({role}): {} tests, rps: {}",
            rows.len(),
            summary.join(" ")
        );
        assert_eq!(rows.len(), DEFAULT_TESTS.len(), "{rows:?}");
    }
    cluster.shutdown();
    Ok(())
}
