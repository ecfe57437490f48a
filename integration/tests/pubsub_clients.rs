//! Real Pub/Sub clients against a 3-node dkv cluster, the subscriber and
//! the publisher always on different nodes (issue 15): redis-py's `PubSub`
//! (>= 5, from the venv integration/compat/venv; `subscribe`,
//! `psubscribe`, `get_message`, handlers with `run_in_thread`), in RESP2
//! and RESP3; ioredis in subscriber mode; and the Socket.IO Redis adapter
//! (`@socket.io/redis-adapter` with ioredis): two Socket.IO servers on two
//! nodes, a room broadcast from one reaching a client of the other,
//! `fetchSockets()` and `serverSideEmitWithAck` across servers (request and
//! response over pub/sub) and `serverCount()` (PUBSUB NUMSUB). The scripts
//! are integration/compat/pubsub_clients.{py,js} and socketio_adapter.js;
//! they exit non-zero on the first failed check.
//!
//! A missing client is a printed skip on a developer's machine and a
//! failure under CI (.ci/run installs them all).

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use dkv_integration::external::compat_dir;
use dkv_integration::external::{run_bounded, tool_missing};
use dkv_integration::{program_available, Cluster};

/// One script run (each has its own 60 s deadline inside).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);

/// A 3-node cluster and two RESP addresses on different nodes: a follower
/// (the subscriber's) and the leader.
async fn cluster() -> Result<(Cluster, SocketAddr, SocketAddr)> {
    let mut cluster = Cluster::start(3).await?;
    let leader = cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let (follower, leader) = (
        cluster.resp_addr((leader + 1) % 3),
        cluster.resp_addr(leader),
    );
    Ok((cluster, follower, leader))
}

fn node_module_missing(module: &str) -> bool {
    !program_available("node", "--version")
        || !compat_dir().join("node_modules").join(module).exists()
}

async fn run_script(mut c: Command, what: &str) -> Result<()> {
    c.current_dir(compat_dir());
    let out = run_bounded(c, what, SCRIPT_TIMEOUT).await?;
    println!("{out}");
    assert!(out.contains("all checks passed"), "{out}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_pubsub_across_nodes_in_resp2_and_resp3() -> Result<()> {
    let python = compat_dir().join("venv/bin/python3");
    if let Some(missing) = dkv_integration::external::redis_py5_missing(&python) {
        return tool_missing(&missing);
    }
    let (cluster, sub, publisher) = cluster().await?;
    for protocol in ["2", "3"] {
        let mut c = Command::new(&python);
        c.arg("pubsub_clients.py")
            .arg(sub.to_string())
            .arg(publisher.to_string())
            .arg(protocol);
        run_script(c, &format!("pubsub_clients.py (RESP{protocol})")).await?;
    }
    cluster.shutdown();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ioredis_subscriber_mode_across_nodes() -> Result<()> {
    if node_module_missing("ioredis") {
        return tool_missing(
            "node or ioredis is not installed (cd integration/compat && npm install)",
        );
    }
    let (cluster, sub, publisher) = cluster().await?;
    let mut c = Command::new("node");
    c.arg("pubsub_clients.js")
        .arg(sub.to_string())
        .arg(publisher.to_string());
    run_script(c, "pubsub_clients.js").await?;
    cluster.shutdown();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_redis_adapter_across_two_nodes() -> Result<()> {
    if node_module_missing("@socket.io/redis-adapter") || node_module_missing("socket.io-client") {
        return tool_missing(
            "node or the Socket.IO packages are not installed (cd integration/compat && npm install)",
        );
    }
    let (cluster, a, b) = cluster().await?;
    let mut c = Command::new("node");
    c.arg("socketio_adapter.js")
        .arg(a.to_string())
        .arg(b.to_string());
    run_script(c, "socketio_adapter.js").await?;
    cluster.shutdown();
    Ok(())
}
