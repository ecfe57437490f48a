//! Backups on real processes: `dkv-cli backup` taken from a follower of a
//! 3-node cluster under write load, then `dkv-server --restore` seeding every
//! node of a fresh cluster. Every write acknowledged before the backup began
//! must be in the restored cluster with its value; writes that raced the
//! backup may or may not be, but never with another value.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use dkv_integration::cluster::{Cluster, ClusterOptions};
use dkv_integration::external::run_bounded;

const ELECTION_BUDGET: Duration = Duration::from_secs(20);
/// Writes before the backup starts (the load keeps going during it).
const WARMUP: Duration = Duration::from_millis(1500);
/// Most writes the load makes in all.
const MAX_WRITES: u64 = 200_000;

/// Writes `w{n}` = n in order until `stop`, recording when each was
/// acknowledged.
async fn load(
    mut conn: redis::aio::MultiplexedConnection,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<(u64, Instant)>>>,
) -> Result<()> {
    for n in 0..MAX_WRITES {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let _: () = redis::cmd("SET")
            .arg(format!("w{n}"))
            .arg(n)
            .query_async(&mut conn)
            .await
            .with_context(|| format!("SET w{n}"))?;
        let at = Instant::now();
        acked
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .push((n, at));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_restores_every_write_acknowledged_before_it() -> Result<()> {
    let mut source = Cluster::start(3).await?;
    let leader = source.wait_for_leader(ELECTION_BUDGET).await?;
    let follower = (0..3).find(|&i| i != leader).context("a follower")?;
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let writer = tokio::spawn(load(
        source.client(leader).await?,
        stop.clone(),
        acked.clone(),
    ));
    tokio::time::sleep(WARMUP).await;

    let dir = tempfile::tempdir()?;
    let file = dir.path().join("cluster.dkvbackup");
    let began = Instant::now();
    let mut cli = std::process::Command::new(dkv_integration::process::cli_binary()?);
    cli.arg("backup")
        .arg(&file)
        .arg("--endpoints")
        .arg(source.operator_addr(follower).to_string())
        .arg("--admin-token-file")
        .arg(source.admin_token_path());
    let printed = run_bounded(cli, "dkv-cli backup", Duration::from_secs(120)).await;
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.context("load task")?;
    let printed = match printed {
        Ok(printed) => printed,
        Err(e) => bail!("{e:#}\n{}", source.log_report()),
    };
    written?;
    ensure!(
        printed.contains("backup of cluster"),
        "dkv-cli backup printed: {printed}"
    );
    let acked = acked
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    let before: Vec<u64> = acked
        .iter()
        .filter(|(_, at)| *at < began)
        .map(|&(n, _)| n)
        .collect();
    ensure!(
        before.len() >= 10,
        "only {} writes before the backup: the load did not run",
        before.len()
    );
    let during = acked.len() - before.len();
    source.shutdown();

    // Every node of a fresh cluster is seeded from the file.
    let opts = ClusterOptions {
        server_args: vec!["--restore".to_string(), file.display().to_string()],
        ..ClusterOptions::default()
    };
    let mut restored = Cluster::start_opts(3, opts, |_| {}).await?;
    restored.wait_for_leader(ELECTION_BUDGET).await?;
    let mut conns = Vec::new();
    for i in 0..3 {
        conns.push(restored.client(i).await?);
    }
    let mut missing = Vec::new();
    for (k, &n) in before.iter().enumerate() {
        let conn = &mut conns[k % 3];
        let got: Option<u64> = redis::cmd("GET")
            .arg(format!("w{n}"))
            .query_async(conn)
            .await?;
        if got != Some(n) {
            missing.push((n, got));
        }
    }
    ensure!(
        missing.is_empty(),
        "{} of {} writes acknowledged before the backup are not restored, e.g. {:?}",
        missing.len(),
        before.len(),
        &missing[..missing.len().min(5)]
    );
    // Writes that raced the backup: in it or not, never with another value.
    let mut raced_in = 0;
    for &(n, _) in &acked[before.len()..] {
        let got: Option<u64> = redis::cmd("GET")
            .arg(format!("w{n}"))
            .query_async(&mut conns[0])
            .await?;
        match got {
            Some(v) if v == n => raced_in += 1,
            None => {}
            Some(v) => bail!("w{n} restored as {v}"),
        }
    }
    // The restored cluster takes writes.
    let _: () = redis::cmd("SET")
        .arg("after-restore")
        .arg("1")
        .query_async(&mut conns[1])
        .await?;
    println!(
        "backup: {} writes acknowledged before it, all restored; {raced_in} of {during} that raced it are in it",
        before.len()
    );
    restored.shutdown();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_a_used_data_dir_and_a_corrupt_file() -> Result<()> {
    let source = Cluster::start(3).await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("b.dkvbackup");
    let mut cli = std::process::Command::new(dkv_integration::process::cli_binary()?);
    cli.arg("backup")
        .arg(&file)
        .arg("--endpoints")
        .arg(source.operator_addr(0).to_string())
        .arg("--admin-token-file")
        .arg(source.admin_token_path());
    run_bounded(cli, "dkv-cli backup", Duration::from_secs(60)).await?;
    // A used data directory: node 0's own.
    let config = source.dir().join("node1.yaml");
    let used = std::process::Command::new(dkv_integration::process::server_binary()?)
        .arg("--config")
        .arg(&config)
        .arg("--restore")
        .arg(&file)
        .output()?;
    ensure!(!used.status.success(), "--restore over a used data dir ran");
    let text = String::from_utf8_lossy(&used.stderr);
    ensure!(
        text.contains("not empty"),
        "--restore over a used dir: {text}"
    );
    // A corrupt backup into an empty directory.
    let mut bytes = std::fs::read(&file)?;
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    let corrupt = dir.path().join("corrupt.dkvbackup");
    std::fs::write(&corrupt, bytes)?;
    let empty = dir.path().join("empty");
    let bad = std::process::Command::new(dkv_integration::process::server_binary()?)
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&empty)
        .arg("--restore")
        .arg(&corrupt)
        .output()?;
    ensure!(!bad.status.success(), "--restore of a corrupt file ran");
    let text = String::from_utf8_lossy(&bad.stderr);
    ensure!(
        text.contains("checksum") || text.contains("does not decode"),
        "--restore of a corrupt file: {text}"
    );
    ensure!(!empty.exists(), "a refused restore created the data dir");
    source.shutdown();
    Ok(())
}
