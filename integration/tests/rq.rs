//! RQ (Debian's python3-rq 1.13 on redis-py 4.3) against a real 3-node dkv
//! cluster: integration/compat/rq_jobs.py enqueues 100 jobs through one
//! node (94 that return a value, 5 that raise, one that depends on two
//! others), `rq worker --burst` runs them all against a second node and
//! exits, and the script checks through the third node every job's status
//! and result as RQ reads it: since RQ 1.12 results live in a stream per job
//! (XADD MAXLEN 10, read back by XREVRANGE), the raising jobs in the failed
//! job registry with their exception, the dependent job released from the
//! deferred registry and run with its parents' results.
//!
//! What the worker sends besides: CLIENT SETNAME, SUBSCRIBE to its command
//! channel, BLPOP/LPOP on the queue, MULTI/EXEC pipelines with HSET, ZADD
//! registries, SADD, EXPIRE/PERSIST, WATCH for dependencies.
//!
//! Bounded: the whole test has [`DEADLINE`]; each step has its own timeout
//! (the script an alarm below it); the worker dies with the test process
//! (PR_SET_PDEATHSIG). 127.0.0.1 only.

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use dkv_integration::external::{command_succeeds, compat_dir, run_bounded, tool_missing};
use dkv_integration::Cluster;

/// The whole test, cluster start to the last check.
const DEADLINE: Duration = Duration::from_secs(200);
/// One script step (it has a 60 s alarm inside).
const STEP_TIMEOUT: Duration = Duration::from_secs(90);
/// The burst worker: 100 jobs, each forked as a work horse.
const WORKER_TIMEOUT: Duration = Duration::from_secs(150);
/// Debian's interpreter, where python3-rq installs.
const PYTHON: &str = "/usr/bin/python3";
/// Debian's `rq` command line.
const RQ: &str = "/usr/bin/rq";

fn step(step: &str, url: &str, ids: &std::path::Path) -> Command {
    let mut c = Command::new(PYTHON);
    c.current_dir(compat_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .arg("rq_jobs.py")
        .args([step, url])
        .arg(ids);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rq_burst_worker_runs_100_jobs_with_results_and_failures() -> Result<()> {
    if !command_succeeds(PYTHON, &["-c", "import rq, rq.results, redis"])
        || !std::path::Path::new(RQ).exists()
    {
        return tool_missing("python3-rq >= 1.12 is not installed (apt-get install python3-rq)");
    }
    match tokio::time::timeout(DEADLINE, run()).await {
        Ok(result) => result,
        Err(_) => bail!("the RQ test did not finish within {DEADLINE:?}"),
    }
}

async fn run() -> Result<()> {
    let mut cluster = Cluster::start(3).await?;
    let leader = cluster.wait_for_leader(Duration::from_secs(20)).await?;
    // Enqueue through a follower, work on the leader, check through the
    // other follower.
    let url = |i: usize| format!("redis://{}/0", cluster.resp_addr(i));
    let (enqueue_at, work_at, check_at) =
        (url((leader + 1) % 3), url(leader), url((leader + 2) % 3));
    let dir = tempfile::tempdir().context("temp dir for the job ids")?;
    let ids = dir.path().join("ids.json");

    let out = run_bounded(
        step("enqueue", &enqueue_at, &ids),
        "rq_jobs.py enqueue",
        STEP_TIMEOUT,
    )
    .await?;
    println!("{out}");
    assert!(out.contains("all checks passed"), "{out}");

    let mut worker = Command::new(RQ);
    worker
        .current_dir(compat_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .args(["worker", "--burst", "--url", &work_at, "--path", "."])
        .args(["--name", "dkv-burst", "dkv"]);
    let log = run_bounded(worker, "rq worker --burst", WORKER_TIMEOUT).await?;
    let ran = log.matches("Job OK").count();
    println!("rq worker --burst: {ran} jobs OK");
    for bad in [
        "redis.exceptions",
        "ResponseError",
        "unknown command",
        "ConnectionError",
    ] {
        assert!(!log.contains(bad), "the worker logged {bad:?}:\n{log}");
    }
    assert_eq!(ran, 95, "jobs that returned a value:\n{log}");

    let out = run_bounded(
        step("check", &check_at, &ids),
        "rq_jobs.py check",
        STEP_TIMEOUT,
    )
    .await?;
    println!("{out}");
    assert!(out.contains("all checks passed"), "{out}");
    cluster.shutdown();
    Ok(())
}
