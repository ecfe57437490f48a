//! Issue 4, must-show 2: `kill -9` of every node during a heavy write load,
//! repeated 20 times, loses no acknowledged write.
//!
//! Several clients (spread over the three nodes) SET unique keys without pause
//! and record every SET acknowledged with `OK`. Each round lets the load run,
//! then SIGKILLs all three nodes — at once on even rounds, one after another
//! (a short gap between kills, so elections start in between) on odd rounds —
//! and restarts them while the clients keep retrying. After the last round,
//! every acknowledged key must read back with its value. A SET that was not
//! acknowledged may or may not be present; it is never checked.
//!
//! Snapshots are taken every few hundred entries, so kills also land while a
//! snapshot is written, right after one, and while a follower installs one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use dkv_integration::{Cluster, RetryClient};
use tokio::task::JoinSet;

/// Kill-all-and-restart rounds.
const ROUNDS: usize = 20;
/// Concurrent writers.
const WRITERS: usize = 6;
/// Load before the kills of each round.
const LOAD_BEFORE_KILL: Duration = Duration::from_millis(400);
/// Gap between kills in the one-after-another variant.
const KILL_GAP: Duration = Duration::from_millis(60);
/// One SET's retry budget (it rides through a round's restart).
const WRITE_BUDGET: Duration = Duration::from_secs(10);
/// Budget for one GET while verifying.
const READ_BUDGET: Duration = Duration::from_secs(20);
const ELECTION_BUDGET: Duration = Duration::from_secs(20);
const READERS: usize = 8;

type Acked = Arc<Mutex<Vec<(String, String)>>>;

fn spawn_writers(c: &Cluster, acked: &Acked, stop: &Arc<AtomicBool>) -> JoinSet<()> {
    let mut writers = JoinSet::new();
    for w in 0..WRITERS {
        let mut client = RetryClient::new(c.resp_addr(w % c.len()));
        let acked = Arc::clone(acked);
        let stop = Arc::clone(stop);
        writers.spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let key = format!("w{w}:k{n}");
                let value = format!("v{w}-{n}");
                // Unique key per attempt: an unacknowledged SET is never checked.
                if client.set_acked(&key, &value, WRITE_BUDGET).await.is_ok() {
                    acked
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((key, value));
                }
            }
        });
    }
    writers
}

async fn verify(c: &Cluster, node: usize, acked: Vec<(String, String)>) -> Result<()> {
    let chunk = acked.len().div_ceil(READERS).max(1);
    let mut readers = JoinSet::new();
    for part in acked.chunks(chunk) {
        let part = part.to_vec();
        let mut client = RetryClient::new(c.resp_addr(node));
        readers.spawn(async move {
            let mut wrong = Vec::new();
            for (key, want) in part {
                let got = client
                    .get(&key, READ_BUDGET)
                    .await
                    .with_context(|| format!("GET {key}"))?;
                if got.as_deref() != Some(want.as_str()) {
                    wrong.push(format!("GET {key} = {got:?}, acknowledged {want:?}"));
                }
            }
            anyhow::Ok(wrong)
        });
    }
    let mut wrong = Vec::new();
    while let Some(joined) = readers.join_next().await {
        wrong.extend(joined.context("reader task panicked")??);
    }
    ensure!(
        wrong.is_empty(),
        "{} acknowledged writes lost or wrong; first ones:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(10)].join("\n")
    );
    Ok(())
}

/// `kill -9` of all three nodes under load, 20 rounds (both variants), then
/// every acknowledged SET reads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_writes_survive_repeated_kill_9_of_every_node_under_load() -> Result<()> {
    let started = Instant::now();
    let mut c = Cluster::start_with(3, |config| {
        config.raft_extra = "snapshot_every_entries: 250, snapshot_log_growth_percent: 0, snapshot_chunk_bytes: 16384".into();
    })
    .await?;
    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = spawn_writers(&c, &acked, &stop);

    let mut acked_before_round = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        tokio::time::sleep(LOAD_BEFORE_KILL).await;
        acked_before_round.push(acked.lock().unwrap_or_else(|e| e.into_inner()).len());
        let one_by_one = round % 2 == 1;
        for i in 0..c.len() {
            c.kill9(i)
                .with_context(|| format!("round {round}: kill -9 node {i}"))?;
            if one_by_one {
                tokio::time::sleep(KILL_GAP).await;
            }
        }
        for i in 0..c.len() {
            c.restart(i)
                .await
                .with_context(|| format!("round {round}: restart node {i}"))?;
        }
    }
    tokio::time::sleep(LOAD_BEFORE_KILL).await;
    stop.store(true, Ordering::Relaxed);
    while let Some(joined) = writers.join_next().await {
        joined.context("writer task panicked")?;
    }

    let acked = std::mem::take(&mut *acked.lock().unwrap_or_else(|e| e.into_inner()));
    ensure!(
        acked_before_round.iter().filter(|&&n| n > 0).count() >= ROUNDS - 1,
        "the load acknowledged too little before the kills: {acked_before_round:?}"
    );
    let leader = c.wait_for_leader(ELECTION_BUDGET).await?;
    let total = acked.len();
    verify(&c, leader, acked)
        .await
        .with_context(|| format!("{total} acknowledged SETs over {ROUNDS} kill-all rounds"))?;
    eprintln!(
        "crash_durability: {total} acknowledged SETs survived {ROUNDS} rounds of kill -9 of all \
         nodes in {:?} (acked after each round: {acked_before_round:?})",
        started.elapsed()
    );
    c.shutdown();
    Ok(())
}
