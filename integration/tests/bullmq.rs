//! Issue 16, must-show 2: BullMQ (integration/compat/node_modules, pinned in
//! package.json) end to end on a 3-node cluster, run by
//! integration/compat/bullmq_jobs.js: a Queue on one node, the Workers on
//! another and a QueueEvents on the third process `BULLMQ_JOBS` jobs
//! (default 1000) with delays, priorities, retries with fixed and
//! exponential backoff and a job scheduler (repeatable job). BullMQ runs
//! nearly every operation as a Lua script (EVALSHA), blocks on BZPOPMIN and
//! reads its events stream with XREAD BLOCK.
//!
//! Checked by the script: every job and every repetition completes; the
//! QueueEvents sees exactly one `completed` event per job; the completed set
//! holds every job exactly once and nothing else, and nothing is failed,
//! active, waiting or delayed at the end; `attemptsMade` is the configured
//! attempts; no delayed job starts before its timestamp + delay, no retry
//! before the failed attempt's end + backoff (only "not before" checks, no
//! upper bounds on time); prioritized jobs added before the worker starts are
//! taken in priority order, FIFO within a priority. Without faults the
//! processor runs each job exactly as often as its attempts.
//!
//! With the leader killed (SIGKILL) once half the jobs are done and
//! restarted 3 s later, the Worker is on the leader, so its connections
//! (blocking ones included) die with it and come back with the node. BullMQ
//! is at-least-once: a job whose worker lost its lock is found stalled and run
//! again, so the processor may run a job twice. "Completed twice", which the
//! kill run must never show, is what BullMQ itself would record twice: two
//! `completed` events for a job on the events stream, or a job twice (or
//! unknown) in the completed set. "Lost" is a job whose add was acknowledged
//! and that never completes, or a job left failed, active, waiting or delayed.
//! Those checks, and the attempts, delay and backoff checks, hold in both runs.
//!
//! A missing node or bullmq is a printed skip on a developer's machine and a
//! failure under CI (.ci/run installs both).

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use dkv_integration::external::{compat_dir, run_bounded, tool_missing, Spawned};
use dkv_integration::{program_available, Cluster};

/// A bound on one script run; the script's own deadline is 150 s.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(200);

fn bullmq_missing() -> Option<&'static str> {
    (!program_available("node", "--version") || !compat_dir().join("node_modules/bullmq").exists())
        .then_some("node or bullmq is not installed (cd integration/compat && npm install)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bullmq_queue_worker_and_events_on_three_nodes() -> Result<()> {
    if let Some(missing) = bullmq_missing() {
        return tool_missing(missing);
    }
    let mut cluster = Cluster::start(3).await?;
    let leader = cluster.wait_for_leader(Duration::from_secs(20)).await?;
    // Queue on the leader, Worker and QueueEvents on the two followers.
    let addrs: Vec<String> = [leader, (leader + 1) % 3, (leader + 2) % 3]
        .iter()
        .map(|&i| cluster.resp_addr(i).to_string())
        .collect();
    let mut c = Command::new("node");
    c.current_dir(compat_dir())
        .arg("bullmq_jobs.js")
        .args(&addrs);
    let out = run_bounded(c, "bullmq_jobs.js", SCRIPT_TIMEOUT).await?;
    println!("{out}");
    assert!(out.contains("all checks passed"), "{out}");
    cluster.shutdown();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bullmq_loses_and_completes_twice_nothing_when_the_leader_is_killed() -> Result<()> {
    if let Some(missing) = bullmq_missing() {
        return tool_missing(missing);
    }
    let _lock = dkv_integration::chaos::exclusive()?;
    // Snapshots every 2,000 entries: the restarted node loads one and
    // replays a short log instead of the whole run's (each entry a BullMQ
    // script), and BullMQ's state goes through snapshots too.
    let mut cluster = Cluster::start_with(3, |c| {
        c.raft_extra = "snapshot_every_entries: 2000, snapshot_log_growth_percent: 0".to_string();
    })
    .await?;
    let leader = cluster.wait_for_leader(Duration::from_secs(20)).await?;
    // The Worker on the leader, Queue and QueueEvents on the followers.
    let addrs: Vec<String> = [(leader + 1) % 3, leader, (leader + 2) % 3]
        .iter()
        .map(|&i| cluster.resp_addr(i).to_string())
        .collect();
    let log = cluster.dir().join("bullmq_jobs.log");
    let mut c = Command::new("node");
    c.current_dir(compat_dir())
        .arg("bullmq_jobs.js")
        .args(&addrs)
        .arg("chaos");
    let mut script = Spawned::start(c, "bullmq_jobs.js", &log)?;
    let begun = Instant::now();
    let mut killed = false;
    let status = loop {
        if let Some(status) = script.exited()? {
            break status;
        }
        if begun.elapsed() > SCRIPT_TIMEOUT {
            bail!(
                "bullmq_jobs.js still running after {SCRIPT_TIMEOUT:?}\n{}",
                script.log_tail(80)
            );
        }
        if !killed && script.log_text().contains("HALFWAY") {
            killed = true;
            cluster.kill9(leader)?;
            println!("killed leader node {leader} at {:?}", begun.elapsed());
            tokio::time::sleep(Duration::from_secs(3)).await;
            cluster.restart(leader).await?;
            println!("restarted node {leader} at {:?}", begun.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let out = script.log_text();
    println!("{out}");
    assert!(
        killed,
        "the script finished before half its jobs were done:\n{out}"
    );
    assert!(
        status.success() && out.contains("all checks passed"),
        "{status}\n{out}"
    );
    cluster.shutdown();
    Ok(())
}
