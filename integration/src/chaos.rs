//! One chaos run: start a proxied cluster, run the workload on every node while the
//! nemesis runs a schedule, heal, read everything back, check the history, report.
//!
//! The report ([`ChaosReport::print`]) gives operations ok / failed / unknown,
//! throughput during faults, the longest unavailability window (longest gap with no
//! successful operation), the time to the first acknowledged write after each leader
//! kill, every check's verdict, and ends with `linearizable: yes|no`. A failing run's
//! history, nemesis log and node logs are saved under `target/chaos/`
//! (every run's, with `DKV_CHAOS_SAVE=1`).

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::json;

use crate::cluster::{Cluster, ClusterOptions};
use crate::history::{self, Input, Outcome, Record, Verdict, FINAL_CLIENT_BASE};
use crate::nemesis::{Event, MemberStats, Nemesis, Schedule};
use crate::workload::{self, ClientKind, Shared, WorkloadConfig, COUNTERS, REGISTERS};

/// One run's settings.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    /// The fault schedule.
    pub schedule: Schedule,
    /// How long the workload and the nemesis run.
    pub duration: Duration,
    /// Cluster size.
    pub nodes: usize,
    /// Seed (workload choices and nemesis choices).
    pub seed: u64,
    /// Workload shape.
    pub workload: WorkloadConfig,
    /// Extra `dkv-server` arguments (e.g. `--unsafe-test-fault stale-reads`).
    pub server_args: Vec<String>,
    /// Search budget per linearizability partition.
    pub max_steps: u64,
    /// Keep the nemesis log off stderr.
    pub quiet: bool,
    /// Raft config keys added to [`CHAOS_RAFT_KEYS`] (e.g. `lease_reads: true`).
    pub raft_extra: String,
}

impl ChaosConfig {
    /// Defaults for `schedule` on `nodes` nodes for `duration`.
    pub fn new(schedule: Schedule, nodes: usize, duration: Duration, seed: u64) -> ChaosConfig {
        ChaosConfig {
            schedule,
            duration,
            nodes,
            seed,
            workload: WorkloadConfig {
                seed,
                ..WorkloadConfig::default()
            },
            server_args: Vec::new(),
            max_steps: 50_000_000,
            quiet: false,
            raft_extra: String::new(),
        }
    }
}

/// What a run showed.
#[derive(Debug, Clone)]
pub struct ChaosReport {
    /// The run's settings.
    pub config: ChaosConfig,
    /// Operations during the run (final reads excluded): ok, failed, unknown.
    pub ok: usize,
    /// Definitely failed.
    pub failed: usize,
    /// Unknown outcome.
    pub unknown: usize,
    /// Length of the run phase (s).
    pub run_secs: f64,
    /// Total time with a fault active (s).
    pub fault_secs: f64,
    /// Successful operations per second while a fault was active.
    pub ops_per_sec_faults: f64,
    /// Successful operations per second outside faults.
    pub ops_per_sec_calm: f64,
    /// The longest gap with no successful operation: (length, start) in s.
    pub longest_gap: (f64, f64),
    /// Per leader kill: seconds until the first acknowledged write invoked after it.
    pub leader_kill_recovery: Vec<f64>,
    /// The checks' verdict.
    pub verdict: Verdict,
    /// The nemesis log.
    pub events: Vec<Event>,
    /// What the nemesis's membership changes did (all zero without them).
    pub members: MemberStats,
    /// Error replies that fit no known class (first few).
    pub unexpected: Vec<String>,
    /// Workloads switched off because the server lacks their commands.
    pub workloads_off: Vec<String>,
    /// The most common failure and unknown reasons, with counts.
    pub reasons: Vec<(String, usize)>,
    /// Where a failing run was saved.
    pub saved: Option<PathBuf>,
    /// A nemesis error (e.g. a node that would not restart), if any.
    pub nemesis_error: Option<String>,
    /// The cluster could not serve the final read-back after the heal.
    pub final_error: Option<String>,
}

impl ChaosReport {
    /// True if every check passed, the nemesis ran to the end, and the
    /// linearizability checks all said `Linearizable`.
    pub fn passed(&self) -> bool {
        self.verdict.ok() && self.nemesis_error.is_none() && self.final_error.is_none()
    }

    /// The report, as printed.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let c = &self.config;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "=== chaos: schedule={} nodes={} duration={:?} seed={}{}",
            c.schedule.name(),
            c.nodes,
            c.duration,
            c.seed,
            if c.server_args.is_empty() {
                String::new()
            } else {
                format!(" server_args={:?}", c.server_args)
            }
        );
        let _ = writeln!(
            s,
            "ops: ok {} / failed {} / unknown {}  ({:.0} ok/s over {:.1} s)",
            self.ok,
            self.failed,
            self.unknown,
            self.ok as f64 / self.run_secs.max(1e-9),
            self.run_secs
        );
        for (reason, n) in &self.reasons {
            let _ = writeln!(s, "  {n:>6} x {reason}");
        }
        let _ = writeln!(
            s,
            "throughput during faults: {:.0} ok ops/s ({:.1} s with a fault active); outside faults: {:.0} ok ops/s",
            self.ops_per_sec_faults, self.fault_secs, self.ops_per_sec_calm
        );
        let _ = writeln!(
            s,
            "longest unavailability: {:.3} s (from t={:.3} s)",
            self.longest_gap.0, self.longest_gap.1
        );
        if !self.leader_kill_recovery.is_empty() {
            let mut r = self.leader_kill_recovery.clone();
            r.sort_by(f64::total_cmp);
            let _ = writeln!(
                s,
                "after {} leader kills: first acknowledged write after {:.3} s median, {:.3} s max",
                r.len(),
                r[r.len() / 2],
                r[r.len() - 1]
            );
        }
        if self.members.steps > 0 {
            let _ = writeln!(s, "membership: {}", self.members.summary());
        }
        if !self.workloads_off.is_empty() {
            let _ = writeln!(
                s,
                "workloads off (server lacks the command): {}",
                self.workloads_off.join(", ")
            );
        }
        for u in &self.unexpected {
            let _ = writeln!(s, "unexpected reply: {u}");
        }
        if let Some(e) = &self.final_error {
            let _ = writeln!(s, "FINAL READ-BACK FAILED after the heal: {e}");
        }
        if let Some(e) = &self.nemesis_error {
            let _ = writeln!(s, "NEMESIS ERROR: {e}");
        }
        for l in &self.verdict.lin {
            let _ = writeln!(
                s,
                "check {} ({} ops, {:.1} s): {:?}",
                l.name,
                l.ops,
                l.took.as_secs_f64(),
                l.result
            );
        }
        let _ = writeln!(s, "acknowledged writes lost: {}", self.verdict.lost.len());
        for l in self.verdict.lost.iter().take(10) {
            let _ = writeln!(s, "  LOST: {l}");
        }
        let _ = writeln!(
            s,
            "session-order violations: {}",
            self.verdict.session.len()
        );
        for l in self.verdict.session.iter().take(10) {
            let _ = writeln!(s, "  SESSION: {l}");
        }
        if !self.verdict.phantom.is_empty() {
            let _ = writeln!(
                s,
                "failed writes that took effect: {}",
                self.verdict.phantom.len()
            );
            for l in self.verdict.phantom.iter().take(10) {
                let _ = writeln!(s, "  PHANTOM: {l}");
            }
        }
        if let Some(p) = &self.saved {
            let _ = writeln!(s, "history saved: {}", p.display());
        }
        let _ = writeln!(
            s,
            "linearizable: {}",
            if self.verdict.linearizable() {
                "yes"
            } else {
                "no"
            }
        );
        s
    }

    /// Print the report to stdout.
    pub fn print(&self) {
        println!("{}", self.render());
    }
}

/// Where failing runs go: `<target>/chaos/`.
pub fn chaos_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .map(|p| p.join("target"))
                .unwrap_or_else(|| PathBuf::from("target"))
        });
    target.join("chaos")
}

/// An exclusive lock (`flock`) on `<target>/chaos/.lock`, held until dropped: chaos
/// runs take it so that they never overlap, across test threads and processes
/// (two clusters under faults on two cores starve each other).
pub struct ChaosLock(#[allow(dead_code)] std::fs::File);

/// Take the [`ChaosLock`], waiting for it (blocking; call it from a multi-thread
/// runtime or before starting one).
///
/// # Errors
/// The lock file cannot be created or locked.
pub fn exclusive() -> Result<ChaosLock> {
    use std::os::fd::AsRawFd;
    let dir = chaos_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let path = dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    // SAFETY: flock on a file descriptor we own.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("flock {}", path.display()));
    }
    Ok(ChaosLock(file))
}

/// Merge overlapping intervals.
fn merge(mut w: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    w.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (a, b) in w {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// Waits up to `grace` for the clients to stop, then aborts the rest.
pub async fn drain(tasks: &mut tokio::task::JoinSet<()>, grace: Duration) {
    let drained =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tasks.abort_all();
    }
}

/// The nemesis's error, if it had one, after making sure every node runs
/// again and every link is healed (for the final reads).
pub async fn settle_on_error(
    nemesis: &mut Nemesis,
    cluster: &mut Cluster,
    result: Result<()>,
) -> Option<String> {
    match result {
        Ok(()) => None,
        Err(e) => {
            let _ = nemesis.settle(cluster).await;
            Some(format!("{e:#}"))
        }
    }
}

/// The run length and schedules of an application chaos test (queue, lock,
/// stream), from the environment: `<PREFIX>_SECS` seconds per schedule
/// (default 20) and `<PREFIX>_SCHEDULES`, comma-separated names (default
/// kill-leader, pause-leader and majority-minority). Empty means unset.
///
/// # Errors
/// The seconds are not a number, or a name is no schedule.
pub fn app_runs(prefix: &str) -> Result<(Duration, Vec<Schedule>)> {
    let var = |suffix: &str| {
        std::env::var(format!("{prefix}_{suffix}"))
            .ok()
            .filter(|v| !v.is_empty())
    };
    let secs: u64 = var("SECS")
        .unwrap_or_else(|| "20".into())
        .parse()
        .with_context(|| format!("{prefix}_SECS is a number of seconds"))?;
    let schedules = var("SCHEDULES")
        .unwrap_or_else(|| "kill-leader,pause-leader,majority-minority".into())
        .split(',')
        .map(|name| Schedule::parse(name.trim()))
        .collect::<Result<Vec<_>>>()?;
    Ok((Duration::from_secs(secs), schedules))
}

/// Raft settings of every chaos cluster (see [`run_chaos`]).
pub const CHAOS_RAFT_KEYS: &str =
    "snapshot_every_entries: 1500, snapshot_log_growth_percent: 0, snapshot_chunk_bytes: 65536";

/// Run one chaos test.
///
/// # Errors
/// The cluster does not start, or does not recover after the heal (no leader, final
/// reads impossible). Check failures are in the report, not errors.
pub async fn run_chaos(config: ChaosConfig) -> Result<ChaosReport> {
    let opts = ClusterOptions {
        proxies: true,
        server_args: config.server_args.clone(),
        ..ClusterOptions::default()
    };
    // Snapshots every few thousand entries, so faults also land while nodes
    // snapshot, compact, and catch up by InstallSnapshot.
    let raft_keys = if config.raft_extra.is_empty() {
        CHAOS_RAFT_KEYS.to_string()
    } else {
        format!("{CHAOS_RAFT_KEYS}, {}", config.raft_extra)
    };
    let mut cluster = Cluster::start_opts(config.nodes, opts, |node| {
        node.raft_extra = raft_keys.clone();
    })
    .await?;
    let origin = Instant::now();
    let stop_at = origin + config.duration;
    let shared = Arc::new(Shared::default());
    let mut tasks = tokio::task::JoinSet::new();
    let mut client_id = 0u64;
    let w = &config.workload;
    for node in 0..config.nodes {
        let kinds = std::iter::repeat_n(ClientKind::Register, w.register_clients)
            .chain(std::iter::repeat_n(ClientKind::Counter, w.counter_clients))
            .chain(std::iter::repeat_n(ClientKind::Bank, w.bank_clients));
        for kind in kinds {
            client_id += 1;
            tasks.spawn(workload::client_loop(
                client_id,
                node,
                cluster.resp_addr(node),
                kind,
                w.clone(),
                origin,
                stop_at,
                shared.clone(),
            ));
        }
    }
    let mut nemesis = Nemesis::new(config.seed, origin, config.quiet);
    let nemesis_result = nemesis.run(&mut cluster, config.schedule, stop_at).await;
    // Clients stop at `stop_at`, each within one request timeout.
    drain(
        &mut tasks,
        config.workload.op_timeout * 3 + Duration::from_secs(5),
    )
    .await;
    let run_end = workload::ns_since(origin);
    let nemesis_error = settle_on_error(&mut nemesis, &mut cluster, nemesis_result).await;

    // Final reads after the heal: every key, from every node.
    let leader = cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .context("no leader after the heal")?;
    if let Ok(s) = cluster.status(leader).await {
        for i in 0..cluster.len() {
            let _ = cluster
                .wait_applied(i, s.commit_index, Duration::from_secs(10))
                .await;
        }
    }
    let counters_on = !shared.no_counters.load(Ordering::Relaxed) && w.counter_clients > 0;
    let bank_on = !shared.no_bank.load(Ordering::Relaxed) && w.bank_clients > 0;
    let mut finals: Vec<Input> = (0..REGISTERS).map(|key| Input::Get { key }).collect();
    if counters_on {
        finals.extend((0..COUNTERS).map(|key| Input::ReadCounter { key }));
    }
    if bank_on {
        finals.push(Input::ReadBank);
    }
    let t_final = Instant::now();
    if !config.quiet {
        eprintln!("[chaos] run phase over; leader {leader}; final reads");
    }
    let mut final_records = Vec::new();
    for node in 0..cluster.len() {
        let addr = cluster.resp_addr(node);
        let mut conn = None;
        for input in &finals {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let call = workload::ns_since(origin);
                let outcome =
                    workload::run_op(&mut conn, addr, input, Duration::from_secs(5), &shared).await;
                let ok = matches!(outcome, Outcome::Ok(_));
                final_records.push(Record {
                    client: FINAL_CLIENT_BASE + node as u64,
                    node,
                    input: input.clone(),
                    call,
                    ret: workload::ns_since(origin),
                    outcome,
                });
                if ok || Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let mut records = std::mem::take(&mut *shared.records.lock().expect("not poisoned"));
    // Unique keys, and the markers of acknowledged transfers: every one must be there.
    let acked_unique: Vec<String> = records
        .iter()
        .filter_map(|r| match (&r.input, &r.outcome) {
            (Input::SetUnique { key } | Input::Transfer { tx: key, .. }, Outcome::Ok(_)) => {
                Some(key.clone())
            }
            _ => None,
        })
        .collect();
    // The markers of the other transfers say which of them took effect; read after
    // every other final read (see `Input::ReadTx`).
    let unsure_tx: Vec<String> = records
        .iter()
        .filter_map(|r| match (&r.input, &r.outcome) {
            (Input::Transfer { tx, .. }, Outcome::Unknown(_) | Outcome::Fail(_)) => {
                Some(tx.clone())
            }
            _ => None,
        })
        .collect();
    let read_back = async {
        let markers = read_keys(&cluster, leader, &unsure_tx, origin).await?;
        let unique = read_keys(&cluster, leader, &acked_unique, origin).await?;
        Ok::<_, anyhow::Error>((markers, unique))
    };
    let (missing, final_error) = match read_back.await {
        Ok((markers, unique)) => {
            final_records.extend(markers.into_iter().map(|(key, value, call, ret)| Record {
                client: FINAL_CLIENT_BASE + cluster.len() as u64,
                node: leader,
                input: Input::ReadTx { key },
                call,
                ret,
                outcome: Outcome::Ok(crate::history::Output::Value(value)),
            }));
            let missing = unique
                .into_iter()
                .filter(|(_, value, _, _)| value.is_none())
                .map(|(key, ..)| key)
                .collect();
            (missing, None)
        }
        // A cluster that cannot serve reads after the heal is a finding, not a
        // harness error: report it and go on checking what we have.
        Err(e) => (Vec::new(), Some(format!("{e:#}"))),
    };
    if !config.quiet {
        eprintln!(
            "[chaos] final reads took {:?}; {} unique keys read back; checking",
            t_final.elapsed(),
            acked_unique.len()
        );
    }

    // Statistics over the run phase.
    let run: Vec<&Record> = records
        .iter()
        .filter(|r| r.client < FINAL_CLIENT_BASE)
        .collect();
    let ok = run.iter().filter(|r| r.is_ok()).count();
    let failed = run
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Fail(_)))
        .count();
    let unknown = run.len() - ok - failed;
    let mut reason_counts: std::collections::HashMap<String, usize> = Default::default();
    for r in &run {
        let reason = match &r.outcome {
            Outcome::Fail(e) => format!("failed: {}", short(e)),
            Outcome::Unknown(e) => format!("unknown: {}", short(e)),
            Outcome::Ok(_) => continue,
        };
        *reason_counts.entry(reason).or_default() += 1;
    }
    let mut reasons: Vec<(String, usize)> = reason_counts.into_iter().collect();
    reasons.sort_by_key(|r| std::cmp::Reverse(r.1));
    reasons.truncate(8);
    let windows = merge(nemesis.windows.clone());
    let fault_ns: u64 = windows.iter().map(|(a, b)| b - a).sum();
    let in_fault = |t: u64| windows.iter().any(|&(a, b)| a <= t && t <= b);
    let ok_in_faults = run.iter().filter(|r| r.is_ok() && in_fault(r.ret)).count();
    let run_secs = run_end as f64 / 1e9;
    let fault_secs = fault_ns as f64 / 1e9;
    let mut ok_times: Vec<u64> = run.iter().filter(|r| r.is_ok()).map(|r| r.ret).collect();
    ok_times.sort_unstable();
    let mut longest_gap = (0.0, 0.0);
    let mut prev = 0u64;
    for &t in ok_times.iter().chain(std::iter::once(&run_end)) {
        let t = t.min(run_end);
        let gap = t.saturating_sub(prev) as f64 / 1e9;
        if gap > longest_gap.0 {
            longest_gap = (gap, prev as f64 / 1e9);
        }
        prev = prev.max(t);
    }
    let leader_kill_recovery = nemesis
        .leader_kills
        .iter()
        .filter_map(|&t| {
            run.iter()
                .filter(|r| r.is_ok() && r.input.is_write() && r.call >= t)
                .map(|r| r.ret)
                .min()
                .map(|first| (first - t) as f64 / 1e9)
        })
        .collect();
    let mut workloads_off = Vec::new();
    if !counters_on && w.counter_clients > 0 {
        workloads_off.push("counters (INCR)".to_string());
    }
    if !bank_on && w.bank_clients > 0 {
        workloads_off.push("bank (MULTI/EXEC INCRBY)".to_string());
    }

    records.extend(final_records);
    let t_check = Instant::now();
    let verdict = history::check_all(&records, &missing, config.max_steps);
    if !config.quiet {
        eprintln!("[chaos] checks took {:?}", t_check.elapsed());
    }
    let mut report = ChaosReport {
        ok,
        failed,
        unknown,
        run_secs,
        fault_secs,
        ops_per_sec_faults: ok_in_faults as f64 / fault_secs.max(1e-9),
        ops_per_sec_calm: (ok - ok_in_faults) as f64 / (run_secs - fault_secs).max(1e-9),
        longest_gap,
        leader_kill_recovery,
        verdict,
        events: nemesis.events.clone(),
        members: nemesis.members.clone(),
        unexpected: shared.unexpected.lock().expect("not poisoned").clone(),
        workloads_off,
        reasons,
        saved: None,
        nemesis_error,
        final_error,
        config,
    };
    if !report.passed() || std::env::var_os("DKV_CHAOS_SAVE").is_some() {
        report.saved = save_failure(&report, &records, &cluster).ok();
    }
    cluster.shutdown();
    Ok(report)
}

fn short(e: &str) -> String {
    // Group by the error's first words (values and addresses vary).
    let s: String = e.split_whitespace().take(5).collect::<Vec<_>>().join(" ");
    s.chars().take(70).collect()
}

/// Read every key in `keys` from node `node` (MGET in batches, with retries);
/// returns (key, value, call, return) with the batch's times (ns since `origin`).
async fn read_keys(
    cluster: &Cluster,
    node: usize,
    keys: &[String],
    origin: Instant,
) -> Result<Vec<(String, Option<String>, u64, u64)>> {
    let addr = cluster.resp_addr(node);
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(500) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let call = workload::ns_since(origin);
        let values: Vec<Option<String>> = loop {
            let attempt = async {
                let mut conn = workload::connect(addr, Duration::from_secs(5))
                    .await
                    .map_err(|e| anyhow::anyhow!(e))?;
                // One MGET per chunk: one linearizable read, where pipelined GETs
                // would wait for a read index each.
                let v: Vec<Option<String>> = tokio::time::timeout(
                    Duration::from_secs(10),
                    redis::cmd("MGET").arg(chunk).query_async(&mut conn),
                )
                .await
                .context("timed out")??;
                Ok::<_, anyhow::Error>(v)
            };
            match attempt.await {
                Ok(v) => break v,
                Err(e) if Instant::now() >= deadline => {
                    return Err(e.context(format!("reading back unique keys from node {node}")))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        let ret = workload::ns_since(origin);
        out.extend(
            chunk
                .iter()
                .zip(values)
                .map(|(k, v)| (k.clone(), v, call, ret)),
        );
    }
    Ok(out)
}

fn save_failure(report: &ChaosReport, records: &[Record], cluster: &Cluster) -> Result<PathBuf> {
    let c = &report.config;
    let dir = chaos_dir().join(format!(
        "{}-n{}-seed{}-{}",
        c.schedule.name(),
        c.nodes,
        c.seed,
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let doc = json!({
        "schedule": c.schedule.name(),
        "nodes": c.nodes,
        "seed": c.seed,
        "server_args": c.server_args,
        "report": report.render(),
        "nemesis": report.events.iter().map(|e| json!({"at_ns": e.at, "what": e.what})).collect::<Vec<_>>(),
        "history": history::history_json(records),
    });
    let path = dir.join("history.json");
    std::fs::write(&path, serde_json::to_string_pretty(&doc)?)
        .with_context(|| format!("write {}", path.display()))?;
    for i in 0..cluster.len() {
        let id = cluster.config(i).id;
        let _ = std::fs::copy(
            cluster.dir().join(format!("node{id}.log")),
            dir.join(format!("node{id}.log")),
        );
    }
    Ok(path)
}
