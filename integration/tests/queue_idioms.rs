//! Job-queue idioms as applications write them, with redis-py (>= 5, from the
//! venv integration/compat/venv) and ioredis (integration/compat/node_modules),
//! against a real 3-node cluster, each client connected to the leader and to a
//! follower at once: LPUSH + BRPOP workers, the BLMOVE reliable queue
//! (processing list, LREM, a reaper's LMOVE), delayed jobs in a ZSET moved by
//! ZRANGEBYSCORE + ZREM (checking ZREM's reply, or WATCH/MULTI), and a
//! ZINCRBY leaderboard read with ZREVRANGE WITHSCORES / ZRANK / ZREVRANK. The
//! scripts (queue_idioms.py, queue_idioms.js) check that no job is lost or
//! done twice and the order wherever Redis defines one; they exit non-zero on
//! the first failed check.
//!
//! A missing client is a printed skip on a developer's machine and a failure
//! under CI (.ci/run installs both).

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use dkv_integration::external::compat_dir;
use dkv_integration::external::{run_bounded, tool_missing};
use dkv_integration::{program_available, Cluster};

/// One script run (each has its own 60 s deadline inside).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);

/// A 3-node cluster and (leader, follower) RESP addresses.
async fn cluster() -> Result<(Cluster, SocketAddr, SocketAddr)> {
    let mut cluster = Cluster::start(3).await?;
    let leader = cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let (l, f) = (
        cluster.resp_addr(leader),
        cluster.resp_addr((leader + 1) % 3),
    );
    Ok((cluster, l, f))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_queue_idioms_on_leader_and_follower() -> Result<()> {
    let python = compat_dir().join("venv/bin/python3");
    if let Some(missing) = dkv_integration::external::redis_py5_missing(&python) {
        return tool_missing(&missing);
    }
    let (cluster, leader, follower) = cluster().await?;
    let mut c = Command::new(&python);
    c.arg(compat_dir().join("queue_idioms.py"))
        .arg(leader.to_string())
        .arg(follower.to_string());
    let out = run_bounded(c, "queue_idioms.py", SCRIPT_TIMEOUT).await?;
    println!("{out}");
    assert!(out.contains("all checks passed"), "{out}");
    cluster.shutdown();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ioredis_queue_idioms_on_leader_and_follower() -> Result<()> {
    if !program_available("node", "--version")
        || !compat_dir().join("node_modules/ioredis").exists()
    {
        return tool_missing(
            "node or ioredis is not installed (cd integration/compat && npm install ioredis)",
        );
    }
    let (cluster, leader, follower) = cluster().await?;
    let mut c = Command::new("node");
    c.current_dir(compat_dir())
        .arg("queue_idioms.js")
        .arg(leader.to_string())
        .arg(follower.to_string());
    let out = run_bounded(c, "queue_idioms.js", SCRIPT_TIMEOUT).await?;
    println!("{out}");
    assert!(out.contains("all checks passed"), "{out}");
    cluster.shutdown();
    Ok(())
}
