//! Sidekiq (Debian's ruby-sidekiq 6.4, on the redis-rb 4.8 gem) against a real
//! 3-node dkv cluster: the client pushes jobs (`Sidekiq::Client#push` and
//! `#push_bulk`) through the leader and through a follower, two real `sidekiq`
//! processes (the CLI, job classes loaded with `-r
//! integration/compat/sidekiq_jobs.rb`), one connected to a follower and one to
//! the leader, work them, and integration/compat/sidekiq_compat.rb checks with
//! Sidekiq's own API: every job ran exactly once (no process crashes here, so
//! basic fetch's BRPOP hands each job to one worker); a job that raises is put
//! in the `retry` ZSET with its error (`Sidekiq::RetrySet`), comes back and
//! then succeeds; a job with `retry: 0` lands in the `dead` ZSET; the process
//! heartbeat (`processes` SET, the process hash with `beat`, `busy`, `quiet`,
//! `<identity>:workers`), stats (`stat:processed`, `stat:failed`), a remote
//! `quiet!` through the process's signals list; and after SIGTERM both
//! processes take themselves out of `processes`.
//!
//! **Configured around:** Sidekiq's scheduled-job poller (which moves due jobs
//! from the `schedule` and `retry` ZSETs back to their queues) sends
//! `SCRIPT LOAD` then `EVALSHA`, and dkv has no scripting yet: the poller only
//! logs `ERR unknown command 'script'` every second, and retries and scheduled
//! jobs never come back. The processes here run with
//! `DKV_SIDEKIQ_PLAIN_POLLER=1`, which makes sidekiq_jobs.rb set
//! `Sidekiq.options[:scheduled_enq]` (a documented Sidekiq option) to a poller
//! without Lua: ZRANGEBYSCORE … LIMIT 0 1, then ZREM, and only the process
//! whose ZREM answered 1 pushes the job. Everything else is stock Sidekiq.
//! The same test with Sidekiq's own Lua poller (SCRIPT LOAD, then EVALSHA of
//! its `zpopbyscore` script, `perform_in` jobs included) is
//! `sidekiq_with_its_lua_scheduled_poller`.
//!
//! Bounded: the whole test has [`DEADLINE`]; each script step has its own;
//! the sidekiq processes are killed on every path (their guards' Drop) and
//! die with the test process (PR_SET_PDEATHSIG). 127.0.0.1 only.

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use dkv_integration::external::compat_dir;
use dkv_integration::external::{
    command_succeeds, run_beside, run_bounded, stop_all, tool_missing, Spawned,
};
use dkv_integration::Cluster;

/// The whole test, cluster start to the last check.
const DEADLINE: Duration = Duration::from_secs(150);
/// One step of sidekiq_compat.rb (it has its own 60 s deadline inside).
const STEP_TIMEOUT: Duration = Duration::from_secs(75);
/// SIGTERM to exit: sidekiq runs with `-t 5` (5 s for busy jobs), then cleans up.
const STOP_GRACE: Duration = Duration::from_secs(15);

fn step(step: &str, leader: &str, follower: &str) -> Command {
    let mut c = Command::new("ruby");
    c.current_dir(compat_dir())
        .arg("sidekiq_compat.rb")
        .args([step, leader, follower]);
    c
}

/// A `sidekiq` worker process on `url`, tagged `tag` (`-g`, seen in its
/// heartbeat), 5 threads, queues `critical` (weight 2) and `default`.
/// `plain_poller`: swap Sidekiq's Lua poller for the one without scripting.
fn sidekiq(url: &str, tag: &str, dir: &std::path::Path, plain_poller: bool) -> Result<Spawned> {
    let mut c = Command::new("sidekiq");
    c.current_dir(compat_dir())
        .env("REDIS_URL", url)
        .env("DKV_SIDEKIQ_TAG", tag)
        .env(
            "DKV_SIDEKIQ_PLAIN_POLLER",
            if plain_poller { "1" } else { "0" },
        )
        .arg("-r")
        .arg(compat_dir().join("sidekiq_jobs.rb"))
        .args([
            "-c",
            "5",
            "-q",
            "critical,2",
            "-q",
            "default",
            "-g",
            tag,
            "-t",
            "5",
        ]);
    Spawned::start(
        c,
        &format!("sidekiq {tag}"),
        &dir.join(format!("{tag}.log")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidekiq_push_work_retry_dead_and_heartbeat_on_leader_and_follower() -> Result<()> {
    with_deadline(true).await
}

/// Stock Sidekiq, scheduled poller included: it needs SCRIPT LOAD and EVALSHA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidekiq_with_its_lua_scheduled_poller() -> Result<()> {
    with_deadline(false).await
}

async fn with_deadline(plain_poller: bool) -> Result<()> {
    if !command_succeeds("ruby", &["-e", "require 'sidekiq'; require 'sidekiq/api'"])
        || !command_succeeds("sidekiq", &["--version"])
    {
        return tool_missing("ruby-sidekiq is not installed (apt-get install ruby-sidekiq)");
    }
    match tokio::time::timeout(DEADLINE, run(plain_poller)).await {
        Ok(result) => result,
        Err(_) => bail!("the Sidekiq test did not finish within {DEADLINE:?}"),
    }
}

async fn run(plain_poller: bool) -> Result<()> {
    let mut cluster = Cluster::start(3).await?;
    let leader = cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let follower = (leader + 1) % 3;
    let leader_url = format!("redis://{}/0", cluster.resp_addr(leader));
    let follower_url = format!("redis://{}/0", cluster.resp_addr(follower));
    let logs = tempfile::tempdir().context("temp dir for sidekiq logs")?;

    let out = run_bounded(
        step("push", &leader_url, &follower_url),
        "sidekiq_compat.rb push",
        STEP_TIMEOUT,
    )
    .await?;
    println!("{out}");

    let mut workers = [
        sidekiq(&follower_url, "on-follower", logs.path(), plain_poller)?,
        sidekiq(&leader_url, "on-leader", logs.path(), plain_poller)?,
    ];
    let work = run_beside(
        step("work", &leader_url, &follower_url),
        "sidekiq_compat.rb work",
        STEP_TIMEOUT,
        &workers,
    )
    .await?;
    println!("{work}");
    assert!(work.contains("all checks passed"), "{work}");

    stop_all(&mut workers, STOP_GRACE).await?;
    // What the processes logged: booted (INFO's redis_version >= 4), no
    // eviction warning (INFO's maxmemory_policy is noeviction), no Redis error.
    for worker in &workers {
        let log = worker.log_text();
        assert!(
            log.contains("Booting Sidekiq 6."),
            "{}",
            tail_of_log(worker)
        );
        for bad in [
            "ERR ",
            "Redis::CommandError",
            "unknown command",
            "will evict Sidekiq data",
        ] {
            assert!(
                !log.contains(bad),
                "sidekiq logged {bad:?}:\n{}",
                tail_of_log(worker)
            );
        }
    }
    let stopped = run_bounded(
        step("stopped", &leader_url, &follower_url),
        "sidekiq_compat.rb stopped",
        STEP_TIMEOUT,
    )
    .await?;
    println!("{stopped}");
    assert!(stopped.contains("all checks passed"), "{stopped}");
    cluster.shutdown();
    Ok(())
}

/// The last 40 lines of a worker's log, for failure messages.
fn tail_of_log(worker: &Spawned) -> String {
    worker.log_tail(40)
}
