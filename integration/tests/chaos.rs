//! Fault testing on real processes (issue 6): every nemesis schedule against a
//! proxied cluster under a concurrent workload, every history checked for
//! linearizability, lost acknowledged writes and session order.
//!
//! The runs in this file never overlap (they take `chaos::exclusive()`), so it can
//! run alongside the others: two clusters under faults on two cores would starve
//! each other and measure the machine, not the server.
//!
//! `make chaos SCHEDULE=… DURATION=… NODES=… [SEED=…]` runs [`chaos_from_env`].

use std::time::Duration;

use anyhow::{ensure, Result};
use dkv_integration::chaos::{exclusive, run_chaos, ChaosConfig, ChaosReport};
use dkv_integration::Schedule;

/// Seconds each schedule runs in CI (issue 6 asks for at least 30).
const CI_SECS: u64 = 30;
/// Seconds a teeth run lasts (per attempt).
const TEETH_SECS: u64 = 15;
/// Attempts (different seeds) a teeth run gets to catch the bug.
const TEETH_ATTEMPTS: u64 = 3;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

fn summary_line(r: &ChaosReport) -> String {
    format!(
        "{:<18} n={} ok={:<6} failed={:<5} unknown={:<4} faults={:>5.0} ops/s  longest-gap={:>6.3}s  lost={} session={}  linearizable={}",
        r.config.schedule.name(),
        r.config.nodes,
        r.ok,
        r.failed,
        r.unknown,
        r.ops_per_sec_faults,
        r.longest_gap.0,
        r.verdict.lost.len(),
        r.verdict.session.len(),
        if r.verdict.linearizable() { "yes" } else { "no" }
    )
}

/// `make chaos`: `CHAOS_SCHEDULE` (a name or `all`), `CHAOS_DURATION` (s),
/// `CHAOS_NODES`, `CHAOS_SEED`. Without `CHAOS_SCHEDULE` it does nothing, so a
/// plain `cargo test` does not run it twice. With `all`, the schedules rotate, each
/// for `max(DURATION / 9, 30)` s, until `DURATION` is spent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_from_env() -> Result<()> {
    let Ok(schedule) = std::env::var("CHAOS_SCHEDULE") else {
        eprintln!("chaos_from_env: CHAOS_SCHEDULE not set; nothing to do (use `make chaos`)");
        return Ok(());
    };
    let duration: u64 = env_or("CHAOS_DURATION", "30").parse()?;
    let nodes: usize = env_or("CHAOS_NODES", "3").parse()?;
    let seed: u64 = match std::env::var("CHAOS_SEED").ok().filter(|s| !s.is_empty()) {
        Some(s) => s.parse()?,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs(),
    };
    let runs: Vec<(Schedule, u64)> = if schedule == "all" {
        let each = (duration / Schedule::ALL.len() as u64).max(30);
        let mut left = duration;
        let mut runs = Vec::new();
        let mut i = 0;
        while left > 0 {
            let d = each.min(left).max(10);
            runs.push((Schedule::ALL[i % Schedule::ALL.len()], d));
            left = left.saturating_sub(d);
            i += 1;
        }
        runs
    } else {
        vec![(Schedule::parse(&schedule)?, duration)]
    };
    let _lock = exclusive()?;
    let mut reports = Vec::new();
    for (k, (schedule, secs)) in runs.into_iter().enumerate() {
        let config = ChaosConfig::new(schedule, nodes, Duration::from_secs(secs), seed + k as u64);
        let report = run_chaos(config).await?;
        report.print();
        reports.push(report);
    }
    if reports.len() > 1 {
        println!("=== summary of {} runs", reports.len());
        for r in &reports {
            println!("{}", summary_line(r));
        }
        let ok: usize = reports.iter().map(|r| r.ok).sum();
        let failed: usize = reports.iter().map(|r| r.failed).sum();
        let unknown: usize = reports.iter().map(|r| r.unknown).sum();
        let gap = reports.iter().map(|r| r.longest_gap.0).fold(0.0, f64::max);
        let kills: Vec<f64> = reports
            .iter()
            .flat_map(|r| r.leader_kill_recovery.iter().copied())
            .collect();
        println!("total: ok {ok} / failed {failed} / unknown {unknown}; longest unavailability {gap:.3} s");
        if !kills.is_empty() {
            let max = kills.iter().copied().fold(0.0, f64::max);
            println!(
                "after {} leader kills: first acknowledged write within {max:.3} s at worst",
                kills.len()
            );
        }
        let all = reports.iter().all(|r| r.verdict.linearizable());
        println!("linearizable: {}", if all { "yes" } else { "no" });
    }
    for r in &reports {
        ensure!(
            r.passed(),
            "{} failed:\n{}",
            r.config.schedule.name(),
            r.render()
        );
    }
    Ok(())
}

/// `DKV_CHAOS_RECHECK=<history.json>` (a saved run under `target/chaos/`): re-run
/// every check on the saved history and print how long each took; optional
/// `DKV_CHAOS_RECHECK_STEPS` (default 50M). Without the variable it does nothing.
#[test]
fn recheck_saved_history() -> Result<()> {
    let Ok(path) = std::env::var("DKV_CHAOS_RECHECK") else {
        eprintln!("recheck_saved_history: DKV_CHAOS_RECHECK not set; nothing to do");
        return Ok(());
    };
    let steps: u64 = env_or("DKV_CHAOS_RECHECK_STEPS", "50000000").parse()?;
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let records =
        dkv_integration::history::records_from_json(&doc["history"]).map_err(anyhow::Error::msg)?;
    println!("{path}: {} records", records.len());
    let started = std::time::Instant::now();
    let verdict = dkv_integration::history::check_all(&records, &[], steps);
    println!("all checks took {:?}", started.elapsed());
    for l in &verdict.lin {
        println!(
            "check {} ({} ops): {:?} in {:?}",
            l.name, l.ops, l.result, l.took
        );
    }
    ensure!(verdict.ok(), "{verdict:?}");
    Ok(())
}

/// Issue 6, must-show 1 (and issue 18, must-show 2: membership changes are
/// one schedule and part of the combined one): every schedule for 30 s on 3
/// nodes and two on 5 nodes, one after the other: all linearizable, no
/// acknowledged write lost, session order held.
/// About 7 minutes (12 runs of 30 s plus start, drain, read-back and checks of a
/// few seconds each); the checks take at most a few seconds per run in a debug build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_schedule_is_linearizable_and_loses_no_acknowledged_write() -> Result<()> {
    let _lock = exclusive()?;
    let mut runs: Vec<(Schedule, usize)> = Schedule::ALL.iter().map(|&s| (s, 3)).collect();
    runs.push((Schedule::IsolateLeader, 5));
    runs.push((Schedule::Combined, 5));
    let mut reports = Vec::new();
    for (k, (schedule, nodes)) in runs.into_iter().enumerate() {
        let mut config = ChaosConfig::new(
            schedule,
            nodes,
            Duration::from_secs(CI_SECS),
            6000 + k as u64,
        );
        config.quiet = true;
        let report = run_chaos(config).await?;
        report.print();
        reports.push(report);
    }
    println!("=== summary");
    for r in &reports {
        println!("{}", summary_line(r));
    }
    let failures: Vec<String> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.render())
        .collect();
    ensure!(
        failures.is_empty(),
        "{} runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(())
}

/// Run `schedule` against a server started with `--unsafe-test-fault <fault>`
/// until the checker reports a violation (at most [`TEETH_ATTEMPTS`] seeds).
async fn caught(fault: &str, schedule: Schedule) -> Result<()> {
    let _lock = exclusive()?;
    let mut last = String::new();
    for attempt in 0..TEETH_ATTEMPTS {
        let mut config =
            ChaosConfig::new(schedule, 3, Duration::from_secs(TEETH_SECS), 66 + attempt);
        config.server_args = vec!["--unsafe-test-fault".into(), fault.into()];
        config.quiet = true;
        // Reads only need a small budget to find a simple violation.
        config.max_steps = 5_000_000;
        let report = run_chaos(config).await?;
        report.print();
        if !report.verdict.linearizable() {
            return Ok(());
        }
        last = report.render();
    }
    anyhow::bail!(
        "a server with --unsafe-test-fault {fault} passed {TEETH_ATTEMPTS} {} runs; last:\n{last}",
        schedule.name()
    )
}

/// Issue 6, must-show 2: reads served from the local map without ReadIndex are
/// caught (a deposed leader or a follower returns a stale value).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checker_catches_stale_reads_under_isolate_leader() -> Result<()> {
    caught("stale-reads", Schedule::IsolateLeader).await
}

/// Issue 18, must-show 2: a member removed by the membership schedule keeps
/// running on its own disk and its clients keep calling it; once removed it
/// gets no more entries, so reads it served from its own state would be
/// stale for the whole hold. The checker must see that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checker_catches_stale_reads_of_a_removed_member() -> Result<()> {
    caught("stale-reads", Schedule::Membership).await
}

/// Issue 6, must-show 2: writes acknowledged before they commit are caught (an
/// isolated leader acknowledges writes the new leader never sees).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checker_catches_early_acks_under_isolate_leader() -> Result<()> {
    caught("early-ack", Schedule::IsolateLeader).await
}

/// Leader-lease reads (`raft.lease_reads`, served straight from the map while
/// the lease holds) under SIGSTOP of the leader and under the combined
/// schedule: a paused leader must not answer reads from a lease that expired
/// in real time while it was stopped (its tick count stood still meanwhile),
/// even though reads queued during the pause reach it before any message from
/// the new leader does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_reads_stay_linearizable_under_pauses_and_combined_faults() -> Result<()> {
    let _lock = exclusive()?;
    let mut failures = Vec::new();
    for (k, schedule) in [Schedule::PauseLeader, Schedule::Combined]
        .into_iter()
        .enumerate()
    {
        let mut config =
            ChaosConfig::new(schedule, 3, Duration::from_secs(CI_SECS), 7100 + k as u64);
        config.raft_extra = "lease_reads: true".into();
        config.quiet = true;
        let report = run_chaos(config).await?;
        report.print();
        if !report.passed() {
            failures.push(report.render());
        }
    }
    ensure!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}
