//! Redis 7 functions on a replicated cluster: libraries are cluster state
//! (FUNCTION LOAD/DELETE/RESTORE are log entries, the library set is in
//! snapshots), FCALL is a write run at apply everywhere, FCALL_RO and FCALL
//! of a `no-writes` function are reads.
//!
//! On three real `dkv-server` processes (snapshots every few entries):
//! 1. FUNCTION LOAD on the leader; FCALL through a follower writes on every
//!    node; FCALL_RO and FCALL of a `no-writes` function answer on a
//!    follower; FUNCTION LIST agrees on every node;
//! 2. a payload from `FUNCTION DUMP` of a real `redis-server` restores into
//!    dkv (through a follower) and its function answers `FCALL`;
//! 3. a follower restarted with SIGTERM (WAL replay) lists the libraries;
//! 4. a follower killed while the leader compacts its log past it catches
//!    up by InstallSnapshot and lists the same libraries, then restarts
//!    from that snapshot and still does; `DEBUG STATE-DIGEST` (which covers
//!    the libraries) agrees on every node.

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use dkv_integration::client::connect;
use dkv_integration::redis_server::start_redis;
use dkv_integration::{program_available, Cluster};
use redis::aio::MultiplexedConnection;
use redis::Value;
use tokio::time::Instant;

/// Bound on electing a leader.
const ELECTION_BUDGET: Duration = Duration::from_secs(30);
/// Bound on a node catching up.
const CATCH_UP_BUDGET: Duration = Duration::from_secs(60);
/// Entries between two snapshots.
const SNAPSHOT_EVERY: u64 = 50;

const LIBRARY: &str = "#!lua name=counters\n\
redis.register_function('bump', function(keys, args) return redis.call('INCRBY', keys[1], args[1]) end)\n\
redis.register_function{function_name='peek', callback=function(keys) return redis.call('GET', keys[1]) end, flags={'no-writes'}, description='reads a counter'}";

const REDIS_LIBRARY: &str = "#!lua name=fromredis\n\
redis.register_function{function_name='echo2', callback=function(keys, args) return {args[1], args[1]} end, flags={'no-writes'}}";

async fn fcall(
    conn: &mut MultiplexedConnection,
    verb: &str,
    name: &str,
    keys: &[&str],
    args: &[&str],
) -> redis::RedisResult<Value> {
    redis::cmd(verb)
        .arg(name)
        .arg(keys.len())
        .arg(keys)
        .arg(args)
        .query_async(conn)
        .await
}

/// `FUNCTION LIST` of node `i` (a read served from its own state).
async fn list(cluster: &Cluster, i: usize) -> Result<Value> {
    let mut conn = connect(cluster.resp_addr(i)).await?;
    redis::cmd("FUNCTION")
        .arg("LIST")
        .arg("WITHCODE")
        .query_async(&mut conn)
        .await
        .with_context(|| format!("FUNCTION LIST on node {i}"))
}

/// Waits until node `i` lists `want`.
async fn wait_for_list(cluster: &Cluster, i: usize, want: &Value) -> Result<()> {
    let deadline = Instant::now() + CATCH_UP_BUDGET;
    loop {
        let got = list(cluster, i).await;
        match got {
            Ok(ref v) if v == want => return Ok(()),
            _ if Instant::now() >= deadline => {
                bail!("node {i} lists {got:?}, expected {want:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// `FUNCTION DUMP` of [`REDIS_LIBRARY`] from a real redis-server.
async fn redis_dump() -> Result<Vec<u8>> {
    let (server, _) = start_redis().await?;
    let mut conn = connect(server.addr).await?;
    let name: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(REDIS_LIBRARY)
        .query_async(&mut conn)
        .await
        .context("FUNCTION LOAD on redis-server")?;
    ensure!(name == "fromredis");
    let payload: Vec<u8> = redis::cmd("FUNCTION")
        .arg("DUMP")
        .query_async(&mut conn)
        .await
        .context("FUNCTION DUMP on redis-server")?;
    Ok(payload)
}

/// Writes `n` keys through node `i` (to move the log on).
async fn write_many(cluster: &Cluster, i: usize, tag: &str, n: usize) -> Result<()> {
    let mut conn = connect(cluster.resp_addr(i)).await?;
    for k in 0..n {
        let _: () = redis::cmd("SET")
            .arg(format!("{tag}:{k}"))
            .arg(k)
            .query_async(&mut conn)
            .await
            .with_context(|| format!("SET {tag}:{k}"))?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_are_cluster_state() -> Result<()> {
    if !program_available("redis-server", "--version") {
        println!("SKIPPED: redis-server is not installed (.ci/run installs it)");
        return Ok(());
    }
    let payload = redis_dump().await?;
    let mut cluster = Cluster::start_with(3, |config| {
        config.raft_extra =
            format!("snapshot_every_entries: {SNAPSHOT_EVERY}, snapshot_log_growth_percent: 0, snapshot_chunk_bytes: 8192");
    })
    .await?;
    let result = run(&mut cluster, &payload).await;
    if let Err(e) = result {
        bail!("{e:#}\n{}", cluster.log_report());
    }
    cluster.shutdown();
    Ok(())
}

async fn run(cluster: &mut Cluster, payload: &[u8]) -> Result<()> {
    let leader = cluster.wait_for_leader(ELECTION_BUDGET).await?;
    let followers: Vec<usize> = cluster
        .live()
        .into_iter()
        .filter(|&i| i != leader)
        .collect();
    let (f1, f2) = (followers[0], followers[1]);

    // 1. Load on the leader, call through a follower.
    let mut on_leader = connect(cluster.resp_addr(leader)).await?;
    let name: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(LIBRARY)
        .query_async(&mut on_leader)
        .await
        .context("FUNCTION LOAD on the leader")?;
    ensure!(name == "counters", "FUNCTION LOAD answered {name}");
    let mut on_f1 = connect(cluster.resp_addr(f1)).await?;
    let bumped = fcall(&mut on_f1, "FCALL", "bump", &["c"], &["5"])
        .await
        .context("FCALL through a follower")?;
    ensure!(bumped == Value::Int(5), "FCALL bump answered {bumped:?}");
    let bumped = fcall(&mut on_leader, "FCALL", "BUMP", &["c"], &["2"]).await?;
    ensure!(bumped == Value::Int(7), "FCALL BUMP answered {bumped:?}");
    let mut on_f2 = connect(cluster.resp_addr(f2)).await?;
    let peek = fcall(&mut on_f2, "FCALL_RO", "peek", &["c"], &[])
        .await
        .context("FCALL_RO on a follower")?;
    ensure!(
        peek == Value::BulkString(b"7".to_vec()),
        "FCALL_RO peek answered {peek:?}"
    );
    let peek = fcall(&mut on_f2, "FCALL", "peek", &["c"], &[])
        .await
        .context("FCALL of a no-writes function on a follower")?;
    ensure!(
        peek == Value::BulkString(b"7".to_vec()),
        "FCALL peek {peek:?}"
    );
    match fcall(&mut on_f2, "FCALL_RO", "bump", &["c"], &["1"]).await {
        Err(e)
            if e.to_string()
                .contains("Can not execute a script with write flag") => {}
        other => bail!("FCALL_RO of a writing function answered {other:?}"),
    }
    for i in cluster.live() {
        let mut conn = connect(cluster.resp_addr(i)).await?;
        let c: Option<String> = redis::cmd("GET").arg("c").query_async(&mut conn).await?;
        ensure!(c.as_deref() == Some("7"), "node {i} reads c = {c:?}");
    }
    let listed = list(cluster, leader).await?;
    for i in cluster.live() {
        ensure!(
            list(cluster, i).await? == listed,
            "node {i} lists other libraries"
        );
    }

    // 2. A payload dumped by redis-server, restored through a follower.
    let restored: String = redis::cmd("FUNCTION")
        .arg("RESTORE")
        .arg(payload)
        .query_async(&mut on_f1)
        .await
        .context("FUNCTION RESTORE of redis-server's payload")?;
    ensure!(restored == "OK");
    let echoed = fcall(&mut on_f2, "FCALL", "echo2", &[], &["hi"]).await?;
    ensure!(
        echoed
            == Value::Array(vec![
                Value::BulkString(b"hi".to_vec()),
                Value::BulkString(b"hi".to_vec())
            ]),
        "FCALL echo2 answered {echoed:?}"
    );
    let stats: Value = redis::cmd("FUNCTION")
        .arg("STATS")
        .query_async(&mut on_f2)
        .await?;
    let shown = format!("{stats:?}").to_lowercase();
    ensure!(
        shown.contains("\"libraries_count\"'), int(2)")
            && shown.contains("\"functions_count\"'), int(3)"),
        "FUNCTION STATS {stats:?}: 2 libraries, 3 functions"
    );
    let listed = list(cluster, leader).await?;

    // 3. A follower restarted (WAL replay, maybe a snapshot) lists them.
    cluster.stop(f1).await?;
    cluster.restart(f1).await?;
    wait_for_list(cluster, f1, &listed).await?;

    // 4. A follower that misses enough entries gets a snapshot.
    cluster.kill9(f2)?;
    write_many(cluster, leader, "fill", 4 * SNAPSHOT_EVERY as usize).await?;
    let mut on_leader = connect(cluster.resp_addr(leader)).await?;
    let deleted: String = redis::cmd("FUNCTION")
        .arg("DELETE")
        .arg("counters")
        .query_async(&mut on_leader)
        .await?;
    ensure!(deleted == "OK");
    let reloaded: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(LIBRARY.replace("name=counters", "name=again"))
        .query_async(&mut on_leader)
        .await?;
    ensure!(reloaded == "again");
    write_many(cluster, leader, "more", 4 * SNAPSHOT_EVERY as usize).await?;
    let listed = list(cluster, leader).await?;
    cluster.restart(f2).await?;
    wait_for_list(cluster, f2, &listed).await?;
    let log = cluster.log_tail(f2, 400);
    ensure!(
        log.contains("snapshot installed"),
        "node {f2} caught up without installing a snapshot"
    );
    cluster.stop(f2).await?;
    cluster.restart(f2).await?;
    wait_for_list(cluster, f2, &listed).await?;
    let mut conn = connect(cluster.resp_addr(f2)).await?;
    let peek = fcall(&mut conn, "FCALL_RO", "peek", &["c"], &[]).await?;
    ensure!(
        peek == Value::BulkString(b"7".to_vec()),
        "after restart {peek:?}"
    );

    // Every node holds the same state, libraries included.
    let deadline = Instant::now() + CATCH_UP_BUDGET;
    loop {
        let mut digests = Vec::new();
        for i in cluster.live() {
            let mut conn = connect(cluster.resp_addr(i)).await?;
            let d: String = redis::cmd("DEBUG")
                .arg("STATE-DIGEST")
                .query_async(&mut conn)
                .await?;
            digests.push(d);
        }
        if digests.iter().all(|d| *d == digests[0]) {
            break;
        }
        if Instant::now() >= deadline {
            bail!("state digests differ: {digests:?}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(())
}
