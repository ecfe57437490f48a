//! Celery (Debian's python3-celery 5.2 with kombu 5.2 and redis-py 4.3)
//! against a real 3-node dkv cluster, dkv as broker and as result backend:
//! two real worker processes (`python3 -m celery -A celery_tasks worker`,
//! prefork pool), one connected to a follower and one to the leader, work
//! what integration/compat/celery_compat.py sends through both nodes — 50
//! tasks, a countdown task, a task retried twice (each retry a new message),
//! one past its retries, a group and a chord — and the script checks every
//! result as Celery's redis result backend reads it (pub/sub on the task's
//! key, then GET; a chord's parts counted in a sorted set in MULTI). After
//! the workers' warm shutdown it checks that kombu left no unacknowledged
//! message and empty queues.
//!
//! What kombu sends: LPUSH and BRPOP on the queues; MULTI with ZADD + HSET
//! (`unacked_index`, `unacked`) for every message it delivers, ZREM + HDEL on
//! ack; SADD/SMEMBERS for exchange bindings; PUBLISH + PSUBSCRIBE for the
//! fanout exchanges (mingle, gossip, remote control); a redis-py `Lock`
//! (SET NX PX, release by EVALSHA) around restoring unacked messages.
//!
//! Bounded: the whole test has [`DEADLINE`]; the script has its own
//! deadline below [`STEP_TIMEOUT`]; the workers are killed on every path
//! (their guards' Drop) and die with the test process (PR_SET_PDEATHSIG).
//! 127.0.0.1 only.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use dkv_integration::external::compat_dir;
use dkv_integration::external::{
    command_succeeds, run_beside, run_bounded, stop_all, tool_missing, Spawned,
};
use dkv_integration::Cluster;

/// The whole test, cluster start to the last check.
const DEADLINE: Duration = Duration::from_secs(200);
/// One step of celery_compat.py (it has its own 100 s deadline inside).
const STEP_TIMEOUT: Duration = Duration::from_secs(120);
/// SIGTERM to exit: a warm shutdown waits for running tasks (none by then).
const STOP_GRACE: Duration = Duration::from_secs(30);
/// Debian's interpreter, where python3-celery installs (not a pyenv one
/// first on PATH).
const PYTHON: &str = "/usr/bin/python3";

fn step(step: &str, leader: &str, follower: &str) -> Command {
    let mut c = Command::new(PYTHON);
    c.current_dir(compat_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .arg("celery_compat.py")
        .args([step, leader, follower]);
    c
}

/// A Celery worker on `url` (broker and result backend), named `name`, two
/// prefork processes.
fn worker(url: &str, name: &str, dir: &Path) -> Result<Spawned> {
    let mut c = Command::new(PYTHON);
    c.current_dir(compat_dir())
        .env("DKV_CELERY_BROKER", url)
        .env("DKV_CELERY_BACKEND", url)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        // Celery refuses nothing as root with JSON only, but says so.
        .env("C_FORCE_ROOT", "1")
        .args(["-m", "celery", "-A", "celery_tasks", "worker"])
        .args(["--loglevel", "INFO", "--concurrency", "2"])
        .arg("--hostname")
        .arg(format!("{name}@dkv"));
    Spawned::start(
        c,
        &format!("celery {name}"),
        &dir.join(format!("{name}.log")),
    )
}

fn tail_of_log(worker: &Spawned) -> String {
    worker.log_tail(60)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn celery_tasks_countdown_retries_group_and_chord_on_leader_and_follower() -> Result<()> {
    if !command_succeeds(PYTHON, &["-c", "import celery, kombu, redis"]) {
        return tool_missing("python3-celery is not installed (apt-get install python3-celery)");
    }
    match tokio::time::timeout(DEADLINE, run()).await {
        Ok(result) => result,
        Err(_) => bail!("the Celery test did not finish within {DEADLINE:?}"),
    }
}

async fn run() -> Result<()> {
    let mut cluster = Cluster::start(3).await?;
    let leader = cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let follower = (leader + 1) % 3;
    let leader_url = format!("redis://{}/0", cluster.resp_addr(leader));
    let follower_url = format!("redis://{}/0", cluster.resp_addr(follower));
    let logs = tempfile::tempdir().context("temp dir for celery logs")?;

    let mut workers = [
        worker(&follower_url, "on-follower", logs.path())?,
        worker(&leader_url, "on-leader", logs.path())?,
    ];
    let work = run_beside(
        step("work", &leader_url, &follower_url),
        "celery_compat.py work",
        STEP_TIMEOUT,
        &workers,
    )
    .await?;
    println!("{work}");
    assert!(work.contains("all checks passed"), "{work}");

    stop_all(&mut workers, STOP_GRACE).await?;
    for worker in &workers {
        let log = worker.log_text();
        assert!(log.contains("ready."), "{}", tail_of_log(worker));
        for bad in [
            "ResponseError",
            "redis.exceptions",
            "unknown command",
            "Connection to broker lost",
            "Cannot connect to redis",
        ] {
            assert!(
                !log.contains(bad),
                "celery logged {bad:?}:\n{}",
                tail_of_log(worker)
            );
        }
    }
    let after = run_bounded(
        step("after", &leader_url, &follower_url),
        "celery_compat.py after",
        STEP_TIMEOUT,
    )
    .await?;
    println!("{after}");
    assert!(after.contains("all checks passed"), "{after}");
    cluster.shutdown();
    Ok(())
}
