//! Finding and spawning the server binary; process-level observations (RSS, exit
//! status). Every spawned child gets `PR_SET_PDEATHSIG(SIGKILL)`, so a test process
//! that dies (even by SIGKILL) takes its servers with it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How often waits poll.
pub(crate) const POLL: Duration = Duration::from_millis(25);

/// True if `program arg` (e.g. `redis-cli --version`) runs and exits 0: the
/// tests that drive an outside client skip, saying so, when it is missing.
pub fn program_available(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The `dkv-server` binary: `$DKV_SERVER_BIN`, else `<workspace>/target/release/dkv-server`,
/// else `<workspace>/target/debug/dkv-server`.
///
/// # Errors
/// `DKV_SERVER_BIN` names a missing file, or no binary exists in `target/`.
pub fn server_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("DKV_SERVER_BIN") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!(
                "DKV_SERVER_BIN={} does not exist; build it with `cargo build --release --bin dkv-server`",
                path.display()
            );
        }
        return Ok(path);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("integration/ has no parent directory")?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let candidates = [
        target.join("release/dkv-server"),
        target.join("debug/dkv-server"),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .with_context(|| {
            format!(
                "no dkv-server binary: set DKV_SERVER_BIN or build one (`cargo build --release --bin dkv-server`); looked at {candidates:?}"
            )
        })
}

/// Spawn `bin --config config` with stdout and stderr appended to `log`, `RUST_LOG=info`
/// (override with `DKV_TEST_RUST_LOG`).
/// The `dkv-cli` binary: `$DKV_CLI_BIN`, else `dkv-cli` next to [`server_binary`].
///
/// # Errors
/// Neither exists.
pub fn cli_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("DKV_CLI_BIN") {
        return Ok(PathBuf::from(path));
    }
    let server = server_binary()?;
    let cli = server.with_file_name("dkv-cli");
    anyhow::ensure!(
        cli.is_file(),
        "no dkv-cli next to {} (set DKV_CLI_BIN or `cargo build --release --bins`)",
        server.display()
    );
    Ok(cli)
}

/// Extra command-line arguments go after `--config <file>`.
pub(crate) fn spawn_server_with_args(
    bin: &Path,
    config: &Path,
    log: &Path,
    extra_args: &[String],
) -> Result<Child> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("open log {}", log.display()))?;
    let err = out.try_clone().context("clone log handle")?;
    let mut cmd = Command::new(bin);
    cmd.arg("--config")
        .arg(config)
        .args(extra_args)
        .env(
            "RUST_LOG",
            std::env::var("DKV_TEST_RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .env("RUST_BACKTRACE", "1")
        // Plain text in log files.
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    die_with_parent(&mut cmd);
    cmd.spawn()
        .with_context(|| format!("spawn {} --config {}", bin.display(), config.display()))
}

/// Makes the child get SIGKILL when this process dies, so no program a test
/// starts outlives it.
pub fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; the closure allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
            Ok(())
        });
    }
}

/// Send SIGTERM to a child that has not been reaped yet.
pub(crate) fn sigterm(child: &Child) -> Result<()> {
    signal(child, libc::SIGTERM).context("kill(SIGTERM)")
}

/// Send `sig` to a child that has not been reaped yet.
pub(crate) fn signal(child: &Child, sig: libc::c_int) -> Result<()> {
    let pid = libc::pid_t::try_from(child.id()).context("pid out of range")?;
    // SAFETY: plain syscall; the child is not reaped yet, so the pid is still ours.
    let rc = unsafe { libc::kill(pid, sig) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("kill({sig})"));
    }
    Ok(())
}

/// Poll `child` until it exits or `timeout` passes (`None` on timeout).
pub(crate) async fn wait_exit(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().context("try_wait")? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The value of `name` in `/proc/<pid>/status` (the text after `name:`, trimmed).
///
/// # Errors
/// The process is gone or the file has no such line.
pub fn status_field(pid: u32, name: &str) -> Result<String> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
        .with_context(|| format!("no {name} line in {path}"))
}

/// Resident set size of `pid` in bytes, from `/proc/<pid>/status` (`VmRSS`).
///
/// # Errors
/// The process is gone or the file has no `VmRSS` line.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let value = status_field(pid, "VmRSS")?;
    let kib: u64 = value
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("bad VmRSS value {value:?}"))?;
    Ok(kib * 1024)
}

/// What a server that was expected to exit did.
#[derive(Debug)]
pub struct ExitReport {
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it wrote to stderr.
    pub stderr: String,
    /// Everything it wrote to stdout.
    pub stdout: String,
}

/// Run `bin --config config` (with `RUST_LOG=info`) and wait for it to exit.
/// Output goes to files in `scratch`, so nothing blocks on a full pipe.
///
/// # Errors
/// The process cannot be spawned, or it is still running after `timeout` (it is then
/// killed and the error carries its output).
pub async fn run_until_exit(
    bin: &Path,
    config: &Path,
    scratch: &Path,
    timeout: Duration,
) -> Result<ExitReport> {
    let out_path = scratch.join("run.stdout");
    let err_path = scratch.join("run.stderr");
    let out = File::create(&out_path).with_context(|| format!("create {}", out_path.display()))?;
    let err = File::create(&err_path).with_context(|| format!("create {}", err_path.display()))?;
    let mut cmd = Command::new(bin);
    cmd.arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    die_with_parent(&mut cmd);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("spawn {} --config {}", bin.display(), config.display()))?;
    let status = wait_exit(&mut child, timeout).await?;
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    match status {
        Some(status) => Ok(ExitReport {
            status,
            stderr: read(&err_path),
            stdout: read(&out_path),
        }),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "dkv-server --config {} still running after {timeout:?}; stderr:\n{}\nstdout:\n{}",
                config.display(),
                read(&err_path),
                read(&out_path)
            )
        }
    }
}

/// The last `lines` lines of a file (for failure reports).
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}
