//! Issue 14, must-show 3 (the lock and script clients): real clients whose
//! every lock or command step is a Lua script, each in its own idiom, each
//! connected to two addresses at once:
//! - redis-py's `Lock` (integration/compat/lock_clients.py, redis-py >= 5
//!   from the venv integration/compat/venv): acquire, extend, reacquire,
//!   release, `LockNotOwnedError` for a non-owner, blocking acquire with a
//!   timeout under contention from several threads; and across a leader kill
//!   (the locks taken before it are still held after it, with their scripts
//!   cached, and their owners extend and release them on the new leader);
//! - node `redlock` 5.0.0-beta.2 on ioredis (integration/compat/
//!   script_clients.js `redlock`): acquire, extend, release, contention
//!   between a client on a follower and one on the leader;
//! - ioredis `defineCommand` (script_clients.js `definecommand`): EVAL on a
//!   new connection, EVALSHA after, and EVALSHA → `NOSCRIPT` → EVAL after
//!   `SCRIPT FLUSH`, on a follower and on the leader.
//!
//! Every scenario runs against two targets: a 3-node dkv cluster (the
//! leader and a follower) and a throwaway real `redis-server` 7.0.15 given
//! as both addresses (there is no leader to kill: the failover scenario
//! runs the same steps, its "new leader" being the same server). The
//! redis-server runs are the reference: they show the scripts' checks hold
//! on Redis itself; the dkv runs must pass the same checks.
//!
//! A missing client (or redis-server) is a printed skip on a developer's
//! machine and a failure under CI (.ci/run installs them). Bounded: every
//! script has its own 60 s deadline inside, the harness kills it at
//! [`SCRIPT_TIMEOUT`]; 127.0.0.1 only.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dkv_integration::external::compat_dir;
use dkv_integration::external::{command_succeeds, run_bounded, tool_missing, Spawned};
use dkv_integration::redis_server::{start_redis, RedisServer};
use dkv_integration::{program_available, Cluster};

/// One script run (each has its own 60 s deadline inside).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);

fn venv_python() -> PathBuf {
    compat_dir().join("venv/bin/python3")
}

/// Where the scripts run: a dkv cluster or one redis-server.
enum Target {
    Dkv {
        cluster: Cluster,
        leader: usize,
    },
    Redis {
        // Held for its Drop (which kills the server).
        #[allow(dead_code)]
        server: RedisServer,
        addr: SocketAddr,
    },
}

impl Target {
    /// A 3-node cluster with an elected leader.
    async fn dkv() -> Result<Target> {
        let mut cluster = Cluster::start(3).await?;
        let leader = cluster.wait_for_leader(Duration::from_secs(20)).await?;
        Ok(Target::Dkv { cluster, leader })
    }

    /// A throwaway redis-server, or `None` (after [`tool_missing`]) when
    /// there is none.
    async fn redis() -> Result<Option<Target>> {
        if !program_available("redis-server", "--version") {
            tool_missing("redis-server is not installed (apt-get install redis-server)")?;
            return Ok(None);
        }
        let (server, _conn) = start_redis().await?;
        let addr = server.addr;
        Ok(Some(Target::Redis { server, addr }))
    }

    /// (leader, follower) addresses; redis-server's one address twice.
    fn addrs(&self) -> (SocketAddr, SocketAddr) {
        match self {
            Target::Dkv { cluster, leader } => (
                cluster.resp_addr(*leader),
                cluster.resp_addr((*leader + 1) % 3),
            ),
            Target::Redis { addr, .. } => (*addr, *addr),
        }
    }

    /// Kills the dkv leader and waits for a new one; returns its address.
    /// On redis-server, its own address (nothing is killed).
    async fn fail_over(&mut self) -> Result<SocketAddr> {
        match self {
            Target::Dkv { cluster, leader } => {
                let old = *leader;
                cluster.kill9(old)?;
                let new = cluster.wait_for_leader(Duration::from_secs(30)).await?;
                anyhow::ensure!(new != old, "the killed node {old} is still leader");
                *leader = new;
                Ok(cluster.resp_addr(new))
            }
            Target::Redis { addr, .. } => Ok(*addr),
        }
    }

    fn shutdown(self) {
        if let Target::Dkv { cluster, .. } = self {
            cluster.shutdown();
        }
    }
}

fn redis_py_missing() -> Option<String> {
    let python = venv_python();
    let ok = command_succeeds(
        &python,
        &[
            "-c",
            "import redis,sys; sys.exit(int(redis.__version__.split('.')[0]) < 5)",
        ],
    );
    (!ok).then(|| {
        format!(
            "no redis-py >= 5 in {} (python3 -m venv integration/compat/venv && integration/compat/venv/bin/pip install 'redis>=5')",
            python.display()
        )
    })
}

fn node_missing(package: &str) -> Option<String> {
    let ok = program_available("node", "--version")
        && compat_dir().join("node_modules").join(package).exists()
        && compat_dir().join("node_modules/ioredis").exists()
        // script_clients.js loads both libraries, whichever part runs.
        && compat_dir().join("node_modules/redlock").exists();
    (!ok).then(|| {
        format!(
            "node, ioredis or {package} is not installed (cd integration/compat && npm install)"
        )
    })
}

/// Runs `lock_clients.py basic` against `target`.
async fn redis_py_basic(target: Target) -> Result<()> {
    let (leader, follower) = target.addrs();
    let mut c = Command::new(venv_python());
    c.arg(compat_dir().join("lock_clients.py"))
        .arg("basic")
        .arg(leader.to_string())
        .arg(follower.to_string());
    let out = run_bounded(c, "lock_clients.py basic", SCRIPT_TIMEOUT).await?;
    println!("{out}");
    assert!(out.contains("all checks passed"), "{out}");
    target.shutdown();
    Ok(())
}

/// Runs `lock_clients.py failover`: waits for it to hold its locks, fails
/// the target over, tells the script the new leader, waits for its verdict.
async fn redis_py_failover(mut target: Target) -> Result<()> {
    let (leader, follower) = target.addrs();
    let dir = tempfile::tempdir().context("temp dir")?;
    let trigger = dir.path().join("new-leader");
    let mut c = Command::new(venv_python());
    c.arg(compat_dir().join("lock_clients.py"))
        .arg("failover")
        .arg(leader.to_string())
        .arg(follower.to_string())
        .arg(&trigger);
    let mut script = Spawned::start(c, "lock_clients.py failover", &dir.path().join("py.log"))?;
    wait_for_line(&mut script, "HELD", Duration::from_secs(30)).await?;
    let new_leader = target.fail_over().await?;
    write_atomically(&trigger, &format!("{new_leader}\n"))?;
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let status = loop {
        if let Some(status) = script.exited()? {
            break status;
        }
        if Instant::now() >= deadline {
            bail!(
                "lock_clients.py failover still running after {SCRIPT_TIMEOUT:?}:\n{}",
                script.log_text()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let out = script.log_text();
    println!("{out}");
    assert!(
        status.success() && out.contains("all checks passed"),
        "{status}\n{out}"
    );
    target.shutdown();
    Ok(())
}

/// Waits until the script printed `line` (a whole line), failing early if it
/// exits.
async fn wait_for_line(script: &mut Spawned, line: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if script.log_text().lines().any(|l| l == line) {
            return Ok(());
        }
        if let Some(status) = script.exited()? {
            bail!(
                "the script exited ({status}) before printing {line:?}:\n{}",
                script.log_text()
            );
        }
        if Instant::now() >= deadline {
            bail!("no {line:?} within {timeout:?}:\n{}", script.log_text());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes `text` to `path` so a reader never sees a half-written file.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))
}

/// Runs `script_clients.js <mode>` against `target`.
async fn node_script(target: Target, mode: &str) -> Result<()> {
    let (leader, follower) = target.addrs();
    let mut c = Command::new("node");
    c.current_dir(compat_dir())
        .arg("script_clients.js")
        .arg(mode)
        .arg(leader.to_string())
        .arg(follower.to_string());
    let out = run_bounded(c, &format!("script_clients.js {mode}"), SCRIPT_TIMEOUT).await?;
    println!("{out}");
    assert!(out.contains("all checks passed"), "{out}");
    target.shutdown();
    Ok(())
}

// ---- against a real redis-server: the reference runs -------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_lock_on_redis_server() -> Result<()> {
    if let Some(reason) = redis_py_missing() {
        return tool_missing(&reason);
    }
    match Target::redis().await? {
        Some(target) => redis_py_basic(target).await,
        None => Ok(()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_lock_failover_steps_on_redis_server() -> Result<()> {
    if let Some(reason) = redis_py_missing() {
        return tool_missing(&reason);
    }
    match Target::redis().await? {
        Some(target) => redis_py_failover(target).await,
        None => Ok(()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redlock_on_redis_server() -> Result<()> {
    if let Some(reason) = node_missing("redlock") {
        return tool_missing(&reason);
    }
    match Target::redis().await? {
        Some(target) => node_script(target, "redlock").await,
        None => Ok(()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ioredis_define_command_on_redis_server() -> Result<()> {
    if let Some(reason) = node_missing("ioredis") {
        return tool_missing(&reason);
    }
    match Target::redis().await? {
        Some(target) => node_script(target, "definecommand").await,
        None => Ok(()),
    }
}

// ---- against dkv: leader and follower -----------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_lock_on_leader_and_follower() -> Result<()> {
    if let Some(reason) = redis_py_missing() {
        return tool_missing(&reason);
    }
    redis_py_basic(Target::dkv().await?).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_lock_survives_a_leader_kill() -> Result<()> {
    if let Some(reason) = redis_py_missing() {
        return tool_missing(&reason);
    }
    redis_py_failover(Target::dkv().await?).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redlock_on_leader_and_follower() -> Result<()> {
    if let Some(reason) = node_missing("redlock") {
        return tool_missing(&reason);
    }
    node_script(Target::dkv().await?, "redlock").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ioredis_define_command_on_leader_and_follower() -> Result<()> {
    if let Some(reason) = node_missing("ioredis") {
        return tool_missing(&reason);
    }
    node_script(Target::dkv().await?, "definecommand").await
}
