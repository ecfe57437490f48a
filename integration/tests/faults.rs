//! Issue 3, must-show 4, on real processes with proxied peer links: pre-vote (a
//! partitioned follower does not disturb the leader when it comes back),
//! check-quorum (a leader cut off from both followers stops serving within an
//! election timeout) and `dkv-cli transfer-leader` (leadership moves with no failed
//! client write).
//!
//! The harness's configs use `tick_ms: 10` and election timeouts of 30–60 ticks, so
//! one election timeout is at most 600 ms.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use dkv_integration::{cli_binary, resp, Cluster, ClusterOptions, RawConn, Reply, Role};
use tokio::task::JoinSet;

/// The longest election timeout of the harness's config (60 ticks of 10 ms).
const ELECTION_TIMEOUT_MAX: Duration = Duration::from_millis(600);
/// Scheduling slack on a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(400);
const ELECTION_BUDGET: Duration = Duration::from_secs(20);

/// Pre-vote: a follower cut off for many election timeouts, then healed, neither
/// raises the cluster's term nor causes a leader change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_follower_rejoins_without_raising_the_term() -> Result<()> {
    let mut c = Cluster::start_with_proxies(3).await?;
    let leader = c.wait_for_leader(ELECTION_BUDGET).await?;
    let before = c.status(leader).await?;
    let follower = (leader + 1) % 3;
    c.isolate(follower)?;
    // Many election timeouts: without pre-vote the follower campaigns again and
    // again, raising its term.
    let mut conn = c.client(leader).await?;
    for i in 0..10 {
        let _: () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(i)
            .query_async(&mut conn)
            .await
            .with_context(|| format!("SET k{i} on the leader while a follower is cut off"))?;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let isolated = c.status(follower).await?;
    c.heal()?;
    // Let the follower catch up and any disruption happen.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_leader = c.status(leader).await?;
    let after_follower = c.status(follower).await?;
    println!(
        "term before {}, isolated follower's term {}, after heal: leader {:?} term {}, follower term {}",
        before.term, isolated.term, after_leader.role, after_leader.term, after_follower.term
    );
    ensure!(
        after_leader.is_leader() && after_leader.term == before.term,
        "the healed follower disturbed the leader: before {before:?}, after {after_leader:?} (the follower's term while cut off: {}); pre-vote should keep the term at {}",
        isolated.term,
        before.term
    );
    ensure!(
        after_follower.term == before.term && after_follower.leader == Some(before.id),
        "the follower did not rejoin quietly: {after_follower:?}"
    );
    c.shutdown();
    Ok(())
}

/// Check-quorum: a leader cut off from both followers steps down and stops serving
/// reads and writes within an election timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_leader_stops_serving_within_an_election_timeout() -> Result<()> {
    let mut c = Cluster::start_with_proxies(3).await?;
    let leader = c.wait_for_leader(ELECTION_BUDGET).await?;
    let mut conn = c.client(leader).await?;
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("before")
        .query_async(&mut conn)
        .await?;
    let cut = Instant::now();
    c.isolate(leader)?;
    // Poll its role until it steps down (bounded).
    let stepped_down = loop {
        let s = c.status(leader).await?;
        if !s.is_leader() {
            break cut.elapsed();
        }
        if cut.elapsed() > Duration::from_secs(10) {
            bail!(
                "the isolated leader still claims leadership after 10 s: {s:?} (no check-quorum)"
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    println!("isolated leader stepped down after {stepped_down:?}");
    // It now answers reads and writes with errors, not values.
    let read: redis::RedisResult<Option<String>> = tokio::time::timeout(
        Duration::from_secs(8),
        redis::cmd("GET").arg("k").query_async(&mut conn),
    )
    .await
    .context("GET on the deposed leader did not answer within 8 s")?;
    let write: redis::RedisResult<String> = tokio::time::timeout(
        Duration::from_secs(8),
        redis::cmd("SET")
            .arg("k")
            .arg("after")
            .query_async(&mut conn),
    )
    .await
    .context("SET on the deposed leader did not answer within 8 s")?;
    println!("after stepping down: GET -> {read:?}, SET -> {write:?}");
    ensure!(
        read.is_err(),
        "a leader cut off from its followers served a read: {read:?}"
    );
    ensure!(
        write.is_err(),
        "a leader cut off from its followers acknowledged a write: {write:?}"
    );
    ensure!(
        stepped_down <= ELECTION_TIMEOUT_MAX + SLACK,
        "the isolated leader stepped down after {stepped_down:?}, more than an election timeout ({ELECTION_TIMEOUT_MAX:?} + {SLACK:?} slack)"
    );
    c.heal()?;
    c.wait_for_leader(ELECTION_BUDGET).await?;
    c.shutdown();
    Ok(())
}

/// `dkv-cli transfer-leader --to <id> --endpoints …` moves leadership while
/// clients on every node write, and no client write fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_leader_moves_leadership_without_failed_writes() -> Result<()> {
    let cli = cli_binary()?;
    let mut c = Cluster::start(3).await?;
    let leader = c.wait_for_leader(ELECTION_BUDGET).await?;
    let target = (leader + 1) % 3;
    let target_id = c.config(target).id;

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let mut writers = JoinSet::new();
    for k in 0..6usize {
        let node = k % 3;
        let mut conn = c.client(node).await?;
        let (stop, acked) = (stop.clone(), acked.clone());
        writers.spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let r: redis::RedisResult<String> = redis::cmd("SET")
                    .arg(format!("w{k}:{n}"))
                    .arg(n)
                    .query_async(&mut conn)
                    .await;
                match r {
                    Ok(_) => {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        return Err(anyhow::anyhow!(
                            "writer {k} on node {node}: SET #{n} failed: {e}"
                        ))
                    }
                }
            }
            Ok(())
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (transferred, text) = transfer_leader_to(&c, &cli, target).await?;
    println!("dkv-cli transfer-leader --to {target_id}: {text}");
    let moved_at = Instant::now();
    let new_leader = c.wait_for_leader(ELECTION_BUDGET).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut errors = Vec::new();
    while let Some(j) = writers.join_next().await {
        if let Err(e) = j.context("writer panicked")? {
            errors.push(format!("{e:#}"));
        }
    }
    println!(
        "{} writes acknowledged; {} writers failed; new leader {:?} ({:?} after the CLI returned)",
        acked.load(Ordering::Relaxed),
        errors.len(),
        new_leader.as_ref().ok(),
        moved_at.elapsed()
    );
    ensure!(transferred, "dkv-cli transfer-leader failed: {text}");
    let new_leader = new_leader?;
    ensure!(
        new_leader == target,
        "leadership went to node {new_leader}, not the requested node {target}"
    );
    ensure!(
        errors.is_empty(),
        "client writes failed during the transfer:\n{}",
        errors.join("\n")
    );
    let s = c.status(target).await?;
    ensure!(s.role == Role::Leader, "{s:?}");
    c.shutdown();
    Ok(())
}

/// Asks, with `dkv-cli transfer-leader`, for leadership to move to node `to`
/// (an index into the cluster), bounded by 20 s. Returns whether the command
/// succeeded and what it printed.
async fn transfer_leader_to(
    c: &Cluster,
    cli: &std::path::Path,
    to: usize,
) -> Result<(bool, String)> {
    let endpoints: Vec<String> = (0..c.len())
        .map(|i| c.operator_addr(i).to_string())
        .collect();
    let out = tokio::process::Command::new(cli)
        .arg("transfer-leader")
        .arg("--to")
        .arg(c.config(to).id.to_string())
        .arg("--endpoints")
        .arg(endpoints.join(","))
        .arg("--admin-token-file")
        .arg(c.admin_token_path())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(20), out)
        .await
        .context("dkv-cli transfer-leader did not finish within 20 s")??;
    Ok((
        out.status.success(),
        format!(
            "{} {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

/// What became of one write a client sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// Acknowledged: must be in the log exactly once.
    Acked,
    /// Refused with `CLUSTERDOWN`/`TRYAGAIN`: must not be in it.
    Refused,
    /// Any other error (`ERR outcome unknown`, a timeout): at most once.
    Unknown,
}

/// A follower forwards a write to the leader its driver last published,
/// without asking its own driver first (`NodeHandle::leader_elsewhere`).
/// During a leader change that view is stale: the old leader has stepped
/// down, or the follower has just been elected itself. Clients on every node
/// RPUSH unique elements to one list while leadership moves around the
/// cluster four times; afterwards every acknowledged element is in the list
/// exactly once, every refused one is absent, none is there twice, and
/// nothing is there that no client sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_a_stale_leader_view_are_appended_once() -> Result<()> {
    let cli = cli_binary()?;
    let mut c = Cluster::start(3).await?;
    let first = c.wait_for_leader(ELECTION_BUDGET).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = JoinSet::new();
    for k in 0..6usize {
        let node = k % 3;
        let mut conn = c.client(node).await?;
        let stop = stop.clone();
        writers.spawn(async move {
            let mut fates = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && n < 100_000 {
                n += 1;
                let element = format!("w{k}:{n}");
                let r: redis::RedisResult<i64> = redis::cmd("RPUSH")
                    .arg("stale-view-log")
                    .arg(&element)
                    .query_async(&mut conn)
                    .await;
                let fate = match &r {
                    Ok(_) => Fate::Acked,
                    Err(e) if matches!(e.code(), Some("CLUSTERDOWN" | "TRYAGAIN")) => Fate::Refused,
                    Err(_) => Fate::Unknown,
                };
                fates.push((element, fate));
                if r.is_err() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            (node, fates)
        });
    }
    // Around the cluster: every node becomes leader once, the first twice;
    // each move leaves the third node with a stale view for a moment.
    let mut transfers = Vec::new();
    let mut leader = first;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let to = (leader + 1) % 3;
        let (_, outcome) = transfer_leader_to(&c, &cli, to).await?;
        leader = c.wait_for_leader(ELECTION_BUDGET).await?;
        transfers.push(format!("to {to}: now {leader} ({})", outcome.trim()));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut sent = std::collections::HashMap::new();
    let mut at_followers = 0usize;
    while let Some(joined) = writers.join_next().await {
        let (node, fates) = joined.context("writer panicked")?;
        for (element, fate) in fates {
            if fate == Fate::Acked && node != leader {
                at_followers += 1;
            }
            sent.insert(element, fate);
        }
    }
    let mut conn = c.client(leader).await?;
    let log: Vec<String> = redis::cmd("LRANGE")
        .arg("stale-view-log")
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .context("LRANGE of the log on the leader")?;
    let mut seen = std::collections::HashMap::<&str, usize>::new();
    for element in &log {
        *seen.entry(element.as_str()).or_default() += 1;
    }
    let count = |fate: Fate| sent.values().filter(|&&f| f == fate).count();
    println!(
        "transfers: {transfers:?}; {} writes: {} acknowledged ({at_followers} by nodes other \
         than the last leader), {} refused, {} unknown; {} in the list",
        sent.len(),
        count(Fate::Acked),
        count(Fate::Refused),
        count(Fate::Unknown),
        log.len()
    );
    let mut wrong = Vec::new();
    for (element, times) in &seen {
        match sent.get(*element) {
            None => wrong.push(format!("{element} is in the list but was never sent")),
            Some(fate) if *times > 1 => {
                wrong.push(format!("{element} ({fate:?}) is in the list {times} times"))
            }
            Some(Fate::Refused) => wrong.push(format!("{element} was refused but is in the list")),
            Some(_) => {}
        }
    }
    for (element, fate) in &sent {
        if *fate == Fate::Acked && !seen.contains_key(element.as_str()) {
            wrong.push(format!("{element} was acknowledged but is not in the list"));
        }
    }
    wrong.sort();
    ensure!(
        wrong.is_empty(),
        "{} writes broke the rule; first ones:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(10)].join("\n")
    );
    ensure!(
        count(Fate::Acked) > 0,
        "no write was acknowledged across the transfers"
    );
    c.shutdown();
    Ok(())
}

/// Leader lease under a process pause: a leader stopped (SIGSTOP) for longer
/// than an election timeout, and cut off from its peers, must not answer a read
/// from the lease it held before the pause once it resumes, although its timer
/// fired only once meanwhile. A new leader has acknowledged a newer value by
/// then, so the old one would be a stale read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_leader_does_not_serve_reads_from_an_expired_lease() -> Result<()> {
    let opts = ClusterOptions {
        proxies: true,
        server_args: Vec::new(),
        ..ClusterOptions::default()
    };
    let mut c = Cluster::start_opts(3, opts, |node| {
        node.raft_extra = "lease_reads: true".into();
    })
    .await?;
    let old = c.wait_for_leader(ELECTION_BUDGET).await?;
    let mut conn = c.client(old).await?;
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("old")
        .query_async(&mut conn)
        .await?;
    // A few heartbeat rounds, so the leader holds a fresh lease.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut raw = RawConn::connect(c.resp_addr(old)).await?;
    c.isolate(old)?;
    c.pause(old)?;
    // Two election timeouts of real time pass while it is stopped; a new
    // leader is elected and acknowledges a newer value.
    // The harness skips paused nodes, so the leader found is a new one.
    let new = c.wait_for_leader(ELECTION_BUDGET).await?;
    ensure!(new != old, "the paused node {old} still counted as leader");
    let mut new_conn = c.client(new).await?;
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("new")
        .query_async(&mut new_conn)
        .await?;
    tokio::time::sleep(2 * ELECTION_TIMEOUT_MAX).await;
    // The read waits in the paused leader's socket and is the first thing it
    // sees on resuming; it still cannot hear the new leader.
    raw.send(&resp::encode(&[b"GET", b"k"])).await?;
    c.resume(old)?;
    let reply = raw.read_reply(Duration::from_secs(10)).await;
    println!("GET on the resumed old leader -> {reply:?}");
    if let Ok(Reply::Bulk(Some(value))) = &reply {
        ensure!(
            value.as_slice() != b"old",
            "stale read: the resumed old leader served k=old from an expired lease while node {} had acknowledged k=new",
            c.config(new).id
        );
    }
    c.heal()?;
    c.shutdown();
    Ok(())
}
