//! Issue 13, must-show 3: a reliable queue (LPUSH producers, BLMOVE + LREM
//! consumers on every node) under the kill, pause and partition schedules;
//! checked: no acknowledged push lost, no element delivered to two
//! consumers, no phantom, FIFO held (see `dkv_integration::queue`).
//!
//! `QUEUE_CHAOS_SECS` (default 20 per schedule) and `QUEUE_CHAOS_SCHEDULES`
//! (comma-separated names, default `kill-leader,pause-leader,majority-minority`)
//! change the run. Runs take `chaos::exclusive()`, so they never overlap the
//! other chaos runs.

use anyhow::{ensure, Result};
use dkv_integration::chaos::{app_runs, exclusive};
use dkv_integration::queue::{run_queue_chaos, QueueConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_loses_and_duplicates_nothing_under_kill_pause_and_partition() -> Result<()> {
    let _lock = exclusive()?;
    let (duration, schedules) = app_runs("QUEUE_CHAOS")?;
    let mut failures = Vec::new();
    for (k, schedule) in schedules.into_iter().enumerate() {
        let name = schedule.name();
        let config = QueueConfig::new(schedule, 3, duration, 8100 + k as u64);
        let report = run_queue_chaos(config).await?;
        println!("{}", report.render());
        ensure!(
            report.delivered.0 > 0 && report.pushes.0 > 0,
            "{name}: the run did no work:\n{}",
            report.render()
        );
        if !report.passed() {
            failures.push(report.render());
        }
    }
    ensure!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}
