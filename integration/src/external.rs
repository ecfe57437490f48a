//! Outside programs that the framework and client tests drive (Sidekiq, client
//! scripts run by python/node/ruby, redis-benchmark): finding them, running
//! them with a deadline, and keeping long-running ones (a `sidekiq` worker
//! process) on a leash.
//!
//! Invariants: every program runs with `PR_SET_PDEATHSIG(SIGKILL)` and stdin
//! closed; [`run_bounded`] never waits past its timeout (the child is killed
//! when the wait is given up); a [`Spawned`] process is killed and reaped
//! when the guard drops, on every path, panics included. A test whose program
//! is missing calls [`tool_missing`]: a printed skip on a developer's machine,
//! a failure in CI (`CI` set), where .ci/run must have installed it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::process::{die_with_parent, signal, wait_exit};

/// True when running under CI (`CI` set to anything but empty, `0` or `false`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// `integration/compat`: the client scripts, their `node_modules` and the
/// redis-py venv.
pub fn compat_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("compat")
}

/// What a test does when a program or package it needs is not installed:
/// `Ok(())` after printing `SKIPPED: <reason>` on a developer's machine, an
/// error under CI, where .ci/run installs everything.
///
/// # Errors
/// Under CI (see [`in_ci`]).
pub fn tool_missing(reason: &str) -> Result<()> {
    if in_ci() {
        bail!("{reason}; CI must install it (.ci/run)");
    }
    println!("SKIPPED: {reason}");
    Ok(())
}

/// True if `program args...` runs and exits 0 (e.g. `ruby -e 'require "sidekiq"'`).
pub fn command_succeeds(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `command` to its end, at most `timeout`, and returns its stdout and
/// stderr (in that order, as text).
///
/// # Errors
/// It cannot start, exits non-zero (the error carries what it printed), or
/// is still running at `timeout` (then it is killed and its output is lost:
/// give scripts a deadline of their own below `timeout`).
pub async fn run_bounded(mut command: Command, what: &str, timeout: Duration) -> Result<String> {
    die_with_parent(&mut command);
    let mut command = tokio::process::Command::from(command);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().with_context(|| format!("spawn {what}"))?;
    // Dropping the future on timeout drops the child: kill_on_drop kills it.
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(output) => output.with_context(|| format!("wait for {what}"))?,
        Err(_) => bail!("{what} still running after {timeout:?}: killed"),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        bail!("{what} failed ({}):\n{text}", output.status);
    }
    Ok(text)
}

/// A long-running outside process (a `sidekiq` worker), its stdout and stderr
/// in a log file. Dropping the guard kills it (SIGKILL) and reaps it.
pub struct Spawned {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Spawned {
    /// Starts `command` with its output appended to `log`.
    ///
    /// # Errors
    /// The log cannot be opened or the program cannot start.
    pub fn start(mut command: Command, name: &str, log: &Path) -> Result<Spawned> {
        let out = File::create(log).with_context(|| format!("create {}", log.display()))?;
        let err = out.try_clone().context("clone log handle")?;
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        die_with_parent(&mut command);
        let child = command.spawn().with_context(|| format!("spawn {name}"))?;
        Ok(Spawned {
            name: name.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    /// What the process printed so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of what the process printed, under a header
    /// naming it.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log_text();
        let all: Vec<&str> = log.lines().collect();
        let start = all.len().saturating_sub(lines);
        format!(
            "--- {} log tail ---\n{}",
            self.name,
            all[start..].join("\n")
        )
    }

    /// The process's exit status if it has already exited.
    ///
    /// # Errors
    /// `waitpid` fails.
    pub fn exited(&mut self) -> Result<Option<ExitStatus>> {
        match self.child.as_mut() {
            Some(child) => child.try_wait().context("try_wait"),
            None => bail!("{} was already stopped", self.name),
        }
    }

    /// SIGTERM, then waits up to `grace` for the process to exit by itself.
    ///
    /// # Errors
    /// It is still running after `grace` (it is then killed), or it was
    /// already stopped.
    pub async fn stop(&mut self, grace: Duration) -> Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            bail!("{} was already stopped", self.name);
        };
        if child.try_wait().context("try_wait")?.is_none() {
            signal(&child, libc::SIGTERM).context("SIGTERM")?;
        }
        match wait_exit(&mut child, grace).await? {
            Some(status) => Ok(status),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{} did not exit within {grace:?} of SIGTERM", self.name)
            }
        }
    }
}

/// [`run_bounded`] while `workers` serve it: its output, or its error with
/// every worker's log tail.
///
/// # Errors
/// As [`run_bounded`].
pub async fn run_beside(
    command: Command,
    what: &str,
    timeout: Duration,
    workers: &[Spawned],
) -> Result<String> {
    match run_bounded(command, what, timeout).await {
        Ok(out) => Ok(out),
        Err(e) => {
            let logs: Vec<String> = workers.iter().map(|w| w.log_tail(60)).collect();
            bail!("{e:#}\n{}", logs.join("\n"))
        }
    }
}

/// Checks that none of `workers` has exited, then stops each (SIGTERM,
/// [`Spawned::stop`]) and checks that it exited 0.
///
/// # Errors
/// One had exited already, did not stop within `grace` or exited non-zero;
/// the error carries its log tail.
pub async fn stop_all(workers: &mut [Spawned], grace: Duration) -> Result<()> {
    for worker in workers.iter_mut() {
        if let Some(status) = worker.exited()? {
            bail!(
                "{} exited early ({status}):\n{}",
                worker.name,
                worker.log_tail(60)
            );
        }
    }
    for worker in workers.iter_mut() {
        let status = worker.stop(grace).await?;
        if !status.success() {
            bail!(
                "{} exit on SIGTERM: {status}\n{}",
                worker.name,
                worker.log_tail(60)
            );
        }
    }
    Ok(())
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Why `python` (integration/compat/venv's) lacks redis-py >= 5, with how to
/// install it; None when it has it.
pub fn redis_py5_missing(python: &std::path::Path) -> Option<String> {
    let has = command_succeeds(
        python,
        &[
            "-c",
            "import redis,sys; sys.exit(int(redis.__version__.split('.')[0]) < 5)",
        ],
    );
    (!has).then(|| {
        format!(
            "no redis-py >= 5 in {} (python3 -m venv integration/compat/venv && integration/compat/venv/bin/pip install 'redis>=5')",
            python.display()
        )
    })
}
