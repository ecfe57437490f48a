//! Issue 16, must-show 3: a stream consumer group under the kill, pause and
//! partition schedules. Producers XADD on every node; consumers on every node
//! XREADGROUP + XACK, stall now and then, and take over stalled entries with
//! XAUTOCLAIM and XPENDING IDLE + XCLAIM. Checked after the heal: no
//! acknowledged XADD lost, ids increasing in acknowledgement order, no
//! XACKed entry delivered again, the PEL consistent with the history, and
//! the stream, group and PEL identical on every node (see
//! `dkv_integration::stream_chaos`).
//!
//! `STREAM_CHAOS_SECS` (default 20 per schedule) and `STREAM_CHAOS_SCHEDULES`
//! (comma-separated names, default `kill-leader,pause-leader,majority-minority`)
//! change the run; `make stream-chaos DURATION=… STREAM_SCHEDULES=…` sets
//! them. Runs take `chaos::exclusive()`, so they never overlap the other
//! chaos runs.

use anyhow::{ensure, Result};
use dkv_integration::chaos::{app_runs, exclusive};
use dkv_integration::stream_chaos::{run_stream_chaos, StreamConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_group_loses_and_redelivers_nothing_under_kill_pause_and_partition() -> Result<()> {
    let _lock = exclusive()?;
    let (duration, schedules) = app_runs("STREAM_CHAOS")?;
    let mut failures = Vec::new();
    for (k, schedule) in schedules.into_iter().enumerate() {
        let name = schedule.name();
        let config = StreamConfig::new(schedule, 3, duration, 8600 + k as u64);
        let report = run_stream_chaos(config).await?;
        println!("{}", report.render());
        let delivered: usize = report.delivered.values().sum();
        ensure!(
            report.adds.0 > 0 && delivered > 0 && report.xacks.0 > 0,
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
