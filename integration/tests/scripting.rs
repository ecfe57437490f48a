//! Lua scripts on a replicated cluster: a script call is one log entry run
//! at apply on every replica, and the script cache is replicated state.
//!
//! On three real `dkv-server` processes:
//! 1. EVAL on a follower and on the leader: both answer, and the writes of
//!    both are visible on every node;
//! 2. a run of scripts from every node (counters, hashes, lists, sorted
//!    sets, `math.random`, `TIME`, errors from `redis.call`, `pcall`, one
//!    script stopped by the execution budget after a write) leaves every
//!    node with the same `DEBUG DIGEST` and `DEBUG STATE-DIGEST` (which
//!    covers the script cache), different from an empty dataset's;
//! 3. after `kill -9` of the leader, EVALSHA of a script cached only by an
//!    earlier EVAL (and one cached by SCRIPT LOAD on a follower) runs on
//!    the new leader, and `SCRIPT EXISTS` agrees on every live node;
//! 4. the killed node comes back, then every node is stopped and started
//!    again (each rebuilds its map from its latest snapshot — the nodes
//!    snapshot every [`SNAPSHOT_EVERY`] entries, so the run crossed several
//!    — and its WAL): every node's digests are again identical, the data
//!    digest the one from before the restarts, and the scripts still run.

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use dkv_integration::client::connect;
use dkv_integration::Cluster;
use redis::aio::MultiplexedConnection;
use redis::Value;
use tokio::time::Instant;

/// Bound on electing a leader.
const ELECTION_BUDGET: Duration = Duration::from_secs(30);
/// Bound on the cluster becoming quiet at one applied index.
const SETTLE_BUDGET: Duration = Duration::from_secs(60);
/// Scripts per node in the digest run.
const SCRIPTS_PER_NODE: usize = 60;
/// Entries between two snapshots: the run crosses several, so a restart
/// loads a snapshot that holds scripts' writes and the script cache.
const SNAPSHOT_EVERY: u64 = 50;

async fn eval(
    conn: &mut MultiplexedConnection,
    script: &str,
    keys: &[&str],
    args: &[&str],
) -> redis::RedisResult<Value> {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script).arg(keys.len()).arg(keys).arg(args);
    cmd.query_async(conn).await
}

async fn applied_indexes(cluster: &Cluster, nodes: &[usize]) -> Result<Vec<u64>> {
    let mut applied = Vec::new();
    for &i in nodes {
        applied.push(cluster.status(i).await?.last_applied);
    }
    Ok(applied)
}

/// `(DEBUG DIGEST, DEBUG STATE-DIGEST)` of every node in `nodes`, once they
/// all hold still at one applied index.
async fn settled_digests(cluster: &Cluster, nodes: &[usize]) -> Result<Vec<(String, String)>> {
    let deadline = Instant::now() + SETTLE_BUDGET;
    let mut last = String::new();
    loop {
        if Instant::now() >= deadline {
            bail!("the cluster did not settle within {SETTLE_BUDGET:?}; last: {last}");
        }
        let before = applied_indexes(cluster, nodes).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let again = applied_indexes(cluster, nodes).await?;
        if again != before || before.iter().any(|&a| a != before[0]) {
            last = format!("applied {before:?} then {again:?}");
            continue;
        }
        let mut digests = Vec::new();
        for &i in nodes {
            let mut conn = connect(cluster.resp_addr(i)).await?;
            let digest: String = redis::cmd("DEBUG")
                .arg("DIGEST")
                .query_async(&mut conn)
                .await?;
            let state: String = redis::cmd("DEBUG")
                .arg("STATE-DIGEST")
                .query_async(&mut conn)
                .await?;
            digests.push((digest, state));
        }
        if applied_indexes(cluster, nodes).await? == before {
            return Ok(digests);
        }
        last = "moved while reading the digests".into();
    }
}

/// EVALSHA of the counter script on `c` by 1 answers `want`.
async fn incr_by_sha(
    conn: &mut MultiplexedConnection,
    sha: &str,
    want: i64,
    when: &str,
) -> Result<()> {
    let c: i64 = redis::cmd("EVALSHA")
        .arg(sha)
        .arg(1)
        .arg("c")
        .arg(1)
        .query_async(conn)
        .await
        .with_context(|| format!("EVALSHA {when}"))?;
    ensure!(c == want, "EVALSHA {when} answered {c}, not {want}");
    Ok(())
}

/// Every node in `nodes` has the same digests, and the data digest is
/// `before`'s.
async fn digests_as_before(
    cluster: &Cluster,
    nodes: &[usize],
    before: &str,
    after: &str,
) -> Result<()> {
    let digests = settled_digests(cluster, nodes).await?;
    for (i, d) in digests.iter().enumerate() {
        ensure!(
            *d == digests[0] && d.0 == before,
            "after {after}: node {i} digests {d:?}, node 0's {:?}, data before {before}",
            digests[0]
        );
    }
    Ok(())
}

/// The scripts of the digest run: each touches its own and shared keys.
const SCRIPTS: &[&str] = &[
    "return redis.call('INCRBY', KEYS[1], ARGV[1])",
    "redis.call('HSET', KEYS[1], ARGV[1], math.random(1000000)); return redis.call('HLEN', KEYS[1])",
    "local t = redis.call('TIME'); redis.call('RPUSH', KEYS[1], t[1], t[2]); return redis.call('LLEN', KEYS[1])",
    "redis.call('ZADD', KEYS[1], math.random(), ARGV[1]); return redis.call('ZCARD', KEYS[1])",
    "local ok = redis.pcall('INCR', 'shared:hash'); redis.call('SET', KEYS[1], tostring(ok['err'] ~= nil)); return 1",
    "redis.call('HSET', 'shared:hash', 'f', ARGV[1]); return redis.call('LPOP', 'shared:list')",
    "redis.call('RPUSH', 'shared:list', ARGV[1]); redis.call('SADD', KEYS[1], ARGV[1]); return redis.call('SCARD', KEYS[1])",
    "return redis.call('GET', 'no such key')",
    "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('INCR', KEYS[1])",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_replicate_and_the_cache_survives_failover() -> Result<()> {
    let mut cluster = Cluster::start_with(3, |c| {
        c.raft_extra =
            format!("snapshot_every_entries: {SNAPSHOT_EVERY}, snapshot_log_growth_percent: 0");
    })
    .await?;
    let leader = cluster.wait_for_leader(ELECTION_BUDGET).await?;
    let all = cluster.live();
    let follower = *all.iter().find(|&&i| i != leader).context("a follower")?;
    let zeros = "0".repeat(40);

    // 1. EVAL on a follower and on the leader.
    let counter = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
    let mut on_follower = connect(cluster.resp_addr(follower)).await?;
    let mut on_leader = connect(cluster.resp_addr(leader)).await?;
    let a = eval(&mut on_follower, counter, &["c"], &["5"])
        .await
        .context("EVAL on a follower")?;
    let b = eval(&mut on_leader, counter, &["c"], &["7"])
        .await
        .context("EVAL on the leader")?;
    ensure!(
        a == Value::Int(5) && b == Value::Int(12),
        "EVAL replies {a:?} {b:?}"
    );
    let loaded: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg("return {KEYS[1], ARGV[1]}")
        .query_async(&mut on_follower)
        .await
        .context("SCRIPT LOAD on a follower")?;
    for &i in &all {
        let mut conn = connect(cluster.resp_addr(i)).await?;
        let got: Option<String> = redis::cmd("GET").arg("c").query_async(&mut conn).await?;
        ensure!(got.as_deref() == Some("12"), "node {i} reads c = {got:?}");
    }

    // 2. A run of scripts from every node, then identical digests.
    let mut stopped = 0;
    for round in 0..SCRIPTS_PER_NODE {
        for &i in &all {
            let mut conn = connect(cluster.resp_addr(i)).await?;
            let script = SCRIPTS[(round + i) % SCRIPTS.len()];
            let key = format!("k{}:{}", i, round % 7);
            let arg = format!("{}", round * 3 + i);
            // Error replies (WRONGTYPE on a shared key ...) are part of the
            // run: replicas must agree on them too.
            let _ = eval(&mut conn, script, &[&key], &[&arg]).await;
        }
    }
    let mut conn = connect(cluster.resp_addr(follower)).await?;
    match eval(
        &mut conn,
        "redis.call('INCR', 'budget'); while true do end",
        &[],
        &[],
    )
    .await
    {
        Err(e) if e.to_string().contains("execution budget") => stopped += 1,
        other => bail!("a runaway script answered {other:?}"),
    }
    ensure!(stopped == 1);
    let digests = settled_digests(&cluster, &all).await?;
    ensure!(digests[0].0 != zeros, "the run left an empty dataset");
    for (i, d) in digests.iter().enumerate() {
        ensure!(
            *d == digests[0],
            "node {i} digests {d:?} differ from node 0's {:?}",
            digests[0]
        );
    }
    let mut conn = connect(cluster.resp_addr(leader)).await?;
    let budget: Option<String> = redis::cmd("GET")
        .arg("budget")
        .query_async(&mut conn)
        .await?;
    ensure!(
        budget.as_deref() == Some("1"),
        "the write before the budget ran out: {budget:?}"
    );

    // 3. Kill the leader: the new leader has both scripts.
    let counter_sha: String = redis::cmd("EVAL")
        .arg("return redis.sha1hex(ARGV[1])")
        .arg(0)
        .arg(counter)
        .query_async(&mut conn)
        .await
        .context("redis.sha1hex")?;
    cluster.kill9(leader)?;
    let new_leader = cluster.wait_for_leader(ELECTION_BUDGET).await?;
    ensure!(new_leader != leader, "the killed node is still the leader");
    let mut conn = connect(cluster.resp_addr(new_leader)).await?;
    incr_by_sha(&mut conn, &counter_sha, 13, "on the new leader").await?;
    let pair: Vec<String> = redis::cmd("EVALSHA")
        .arg(&loaded)
        .arg(1)
        .arg("x")
        .arg("y")
        .query_async(&mut conn)
        .await
        .context("EVALSHA of the loaded script")?;
    ensure!(pair == ["x", "y"], "{pair:?}");
    let live = cluster.live();
    for &i in &live {
        let mut conn = connect(cluster.resp_addr(i)).await?;
        let exists: Vec<i64> = redis::cmd("SCRIPT")
            .arg("EXISTS")
            .arg(&counter_sha)
            .arg(&loaded)
            .arg("0000000000000000000000000000000000000000")
            .query_async(&mut conn)
            .await?;
        ensure!(exists == [1, 1, 0], "node {i}: SCRIPT EXISTS {exists:?}");
    }
    let digests = settled_digests(&cluster, &live).await?;
    for (i, d) in digests.iter().enumerate() {
        ensure!(*d == digests[0], "after failover: node {i} digests differ");
    }
    let before_restart = digests[0].0.clone();

    // 4. The killed node back, then every node restarted.
    cluster.restart(leader).await?;
    digests_as_before(&cluster, &all, &before_restart, "the killed node's restart").await?;
    for &i in &all {
        cluster.stop(i).await?;
    }
    for &i in &all {
        cluster.restart(i).await?;
    }
    let leader = cluster.wait_for_leader(ELECTION_BUDGET).await?;
    digests_as_before(&cluster, &all, &before_restart, "restarting every node").await?;
    for &i in &all {
        let log = cluster.log_tail(i, 400);
        ensure!(
            log.contains("snapshot loaded"),
            "node {i} restarted without a snapshot:\n{log}"
        );
    }
    let mut conn = connect(cluster.resp_addr(leader)).await?;
    incr_by_sha(&mut conn, &counter_sha, 14, "after restarting every node").await?;
    cluster.shutdown();
    Ok(())
}
