//! Issue 4, must-show 3, on real processes: a follower that was down while the
//! leader snapshotted and compacted its log past the follower's last entry catches
//! up by InstallSnapshot (the snapshot's data streamed over `/raft/snapshot`), ends
//! with every acknowledged write, and later restarts from the snapshot it received.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use dkv_integration::{http, Cluster};

const ELECTION_BUDGET: Duration = Duration::from_secs(20);
const CATCH_UP_BUDGET: Duration = Duration::from_secs(60);
/// Entries between two snapshots: small, so the test compacts many times.
const SNAPSHOT_EVERY: u64 = 300;
/// Writes while the follower is down: several snapshot intervals, so the
/// leader's log starts well past the follower's last entry.
const WRITES_WHILE_DOWN: usize = 2_000;

/// The `snapshot_index` field of node `i`'s `/status`.
async fn snapshot_index(c: &Cluster, i: usize) -> Result<u64> {
    let response = http::get(c.operator_addr(i), "/status", Duration::from_secs(5)).await?;
    let v: serde_json::Value = serde_json::from_slice(&response.body)
        .with_context(|| format!("node {i} /status: {}", response.text()))?;
    v.get("snapshot_index")
        .and_then(serde_json::Value::as_u64)
        .with_context(|| {
            format!(
                "node {i} /status has no snapshot_index: {}",
                response.text()
            )
        })
}

async fn set_many(c: &Cluster, node: usize, keys: std::ops::Range<usize>) -> Result<()> {
    let mut conn = c.client(node).await?;
    for chunk in keys.collect::<Vec<_>>().chunks(100) {
        let mut pipe = redis::pipe();
        for &k in chunk {
            pipe.cmd("SET")
                .arg(format!("key:{k:06}"))
                .arg(format!("value-{k}-{}", "x".repeat(48)))
                .ignore();
        }
        let _: () = pipe
            .query_async(&mut conn)
            .await
            .with_context(|| format!("pipelined SETs from key {} on node {node}", chunk[0]))?;
    }
    Ok(())
}

async fn check_all(c: &Cluster, node: usize, n: usize) -> Result<()> {
    let mut conn = c.client(node).await?;
    let dbsize: usize = redis::cmd("DBSIZE").query_async(&mut conn).await?;
    ensure!(dbsize == n, "node {node}: DBSIZE {dbsize}, expected {n}");
    for k in (0..n).step_by(7).chain([n - 1]) {
        let got: Option<String> = redis::cmd("GET")
            .arg(format!("key:{k:06}"))
            .query_async(&mut conn)
            .await?;
        let want = format!("value-{k}-{}", "x".repeat(48));
        ensure!(
            got.as_deref() == Some(want.as_str()),
            "node {node}: key:{k:06} = {got:?}, expected {want:?}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_behind_a_compacted_log_catches_up_by_install_snapshot() -> Result<()> {
    let mut c = Cluster::start_with(3, |config| {
        config.raft_extra =
            format!("snapshot_every_entries: {SNAPSHOT_EVERY}, snapshot_log_growth_percent: 0, snapshot_chunk_bytes: 8192");
    })
    .await?;
    let leader = c.wait_for_leader(ELECTION_BUDGET).await?;
    let follower = (leader + 1) % 3;
    set_many(&c, leader, 0..100).await?;
    let follower_before = c.status(follower).await?;
    c.kill9(follower)?;

    set_many(&c, leader, 100..100 + WRITES_WHILE_DOWN).await?;
    let leader_status = c.status(leader).await?;
    let leader_snapshot = snapshot_index(&c, leader).await?;
    // The leader compacts through the older of its two retained snapshots, so
    // its log starts past the follower's end once two snapshots lie beyond it.
    ensure!(
        leader_snapshot >= follower_before.last_log_index + 2 * SNAPSHOT_EVERY,
        "the leader did not snapshot far enough past the follower's log: leader snapshot \
         {leader_snapshot}, follower's last index {}",
        follower_before.last_log_index
    );

    c.restart(follower).await?;
    c.wait_applied(follower, leader_status.commit_index, CATCH_UP_BUDGET)
        .await
        .context("the follower never caught up")?;
    let installed = snapshot_index(&c, follower).await?;
    ensure!(
        installed > follower_before.last_log_index,
        "the follower caught up without a snapshot past its old log (snapshot index \
         {installed}, old last index {}): InstallSnapshot was not used",
        follower_before.last_log_index
    );
    let log = c.log_tail(follower, 400);
    ensure!(
        log.contains("snapshot received") && log.contains("snapshot installed"),
        "the follower's log shows no InstallSnapshot:\n{log}"
    );
    let n = 100 + WRITES_WHILE_DOWN;
    check_all(&c, follower, n).await?;

    // The follower serves as part of a majority with the installed state: stop
    // the leader, and the two others elect a leader holding every write.
    c.kill9(leader)?;
    let new_leader = c.wait_for_leader(ELECTION_BUDGET).await?;
    check_all(&c, new_leader, n).await?;
    // And it restarts from the snapshot it received plus its log tail.
    c.kill9(follower)?;
    c.restart(follower).await?;
    let log = c.log_tail(follower, 100);
    ensure!(
        log.contains("snapshot loaded"),
        "the restarted follower did not load its snapshot:\n{log}"
    );
    c.wait_for_leader(ELECTION_BUDGET).await?;
    check_all(&c, follower, n).await?;
    c.shutdown();
    Ok(())
}
