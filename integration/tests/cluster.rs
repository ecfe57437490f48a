//! Real `dkv-server` processes, real Redis client: acknowledged writes survive a
//! `kill -9` of the leader, a restarted node recovers from its WAL and catches up, and
//! the cluster keeps serving with any two of three nodes.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use dkv_integration::{Cluster, RetryClient};
use tokio::task::JoinSet;

/// Budget for one SET to be acknowledged, across elections and reconnects.
const WRITE_BUDGET: Duration = Duration::from_secs(30);
/// Budget for one GET (retries only `CLUSTERDOWN`/`TRYAGAIN`/`LOADING`/connection errors).
const READ_BUDGET: Duration = Duration::from_secs(20);
/// Bound on electing a leader everyone agrees on.
const ELECTION_BUDGET: Duration = Duration::from_secs(20);
/// Bound on a restarted node catching up.
const CATCH_UP_BUDGET: Duration = Duration::from_secs(30);
/// Concurrent readers per node when verifying.
const READERS_PER_NODE: usize = 8;

/// Acknowledged SETs: key -> value.
type Acked = BTreeMap<String, String>;

/// `clients` concurrent clients each SET `per_client` unique keys; client `k` talks to
/// `nodes[k % nodes.len()]`. Returns every acknowledged write; fails if any SET is not
/// acknowledged within [`WRITE_BUDGET`] (after retrying every error: SET is idempotent).
async fn write_batch(
    cluster: &Cluster,
    nodes: &[usize],
    clients: usize,
    per_client: usize,
    prefix: &str,
) -> Result<Acked> {
    let mut tasks = JoinSet::new();
    for k in 0..clients {
        let node = nodes[k % nodes.len()];
        let mut client = RetryClient::new(cluster.resp_addr(node));
        let prefix = prefix.to_string();
        tasks.spawn(async move {
            let mut acked = Vec::with_capacity(per_client);
            for j in 0..per_client {
                let key = format!("{prefix}:c{k}:k{j}");
                let value = format!("{prefix}-value-{k}-{j}");
                if let Err(e) = client.set_acked(&key, &value, WRITE_BUDGET).await {
                    return (acked, Some(e.context(format!("client {k} -> node {node}"))));
                }
                acked.push((key, value));
            }
            (acked, None)
        });
    }
    let mut acked = Acked::new();
    let mut errors = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (writes, err) = joined.context("writer task panicked")?;
        acked.extend(writes);
        errors.extend(err);
    }
    if let Some(first) = errors.into_iter().next() {
        return Err(first.context(format!(
            "not every SET was acknowledged ({} were)",
            acked.len()
        )));
    }
    ensure!(
        acked.len() == clients * per_client,
        "expected {} acknowledged SETs, have {}",
        clients * per_client,
        acked.len()
    );
    Ok(acked)
}

/// Every acknowledged SET reads back, with its value, from every node in `nodes`.
async fn verify_reads(cluster: &Cluster, nodes: &[usize], acked: &Acked) -> Result<()> {
    let entries: Vec<(String, String)> = acked.clone().into_iter().collect();
    let chunk = entries.len().div_ceil(READERS_PER_NODE).max(1);
    let mut tasks = JoinSet::new();
    for &node in nodes {
        for part in entries.chunks(chunk) {
            let part = part.to_vec();
            let mut client = RetryClient::new(cluster.resp_addr(node));
            tasks.spawn(async move {
                let mut wrong = Vec::new();
                for (key, want) in part {
                    let got = client
                        .get(&key, READ_BUDGET)
                        .await
                        .with_context(|| format!("GET {key} on node {node}"))?;
                    if got.as_deref() != Some(want.as_str()) {
                        wrong.push(format!("node {node}: GET {key} = {got:?}, acked {want:?}"));
                    }
                }
                anyhow::Ok(wrong)
            });
        }
    }
    let mut wrong = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        wrong.extend(joined.context("reader task panicked")??);
    }
    ensure!(
        wrong.is_empty(),
        "{} acknowledged writes read back wrong on nodes {nodes:?}; first ones:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(10)].join("\n")
    );
    Ok(())
}

/// Highest commit index reported by any of `nodes`.
async fn max_commit(cluster: &Cluster, nodes: &[usize]) -> Result<u64> {
    let mut max = 0;
    for &i in nodes {
        max = max.max(cluster.status(i).await?.commit_index);
    }
    Ok(max)
}

/// The must-show scenario, on 3 nodes:
/// 1. 1,000 acknowledged SETs from 10 concurrent clients spread over all nodes;
/// 2. `kill -9` the leader; a new leader is elected and takes writes;
/// 3. every acknowledged SET reads back from both survivors;
/// 4. the killed node restarts, recovers from its WAL and catches up;
/// 5. stopping one of the other two (the current leader, forcing an election that
///    needs the restarted node) leaves a cluster that serves reads and writes, with
///    all acknowledged data present.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_writes_survive_leader_kill_and_node_restart() -> Result<()> {
    let mut c = Cluster::start(3).await?;
    let all = c.live();

    let mut acked = write_batch(&c, &all, 10, 100, "a")
        .await
        .context("phase 1: 1,000 SETs from 10 clients over 3 nodes")?;
    verify_reads(&c, &all, &acked)
        .await
        .context("phase 1: reads on a healthy cluster")?;

    let old_leader = c.wait_for_leader(ELECTION_BUDGET).await?;
    let old_term = c.status(old_leader).await?.term;
    c.kill9(old_leader)?;
    let new_leader = c
        .wait_for_leader(ELECTION_BUDGET)
        .await
        .context("phase 2: electing a leader after kill -9 of the old one")?;
    ensure!(
        new_leader != old_leader,
        "killed node {old_leader} still reported as leader"
    );
    let new_status = c.status(new_leader).await?;
    let new_term = new_status.term;
    ensure!(
        new_term > old_term,
        "new leader's term {new_term} is not above the old leader's {old_term}"
    );
    // The status a node publishes follows the leader change, address included
    // (INFO raft and `dkv-cli status` show it).
    let new_address = c.resp_addr(new_leader).to_string();
    for i in c.live() {
        let s = c.status(i).await?;
        if s.leader == Some(new_status.id) {
            ensure!(
                s.leader_resp_addr.as_deref() == Some(new_address.as_str()),
                "node {i} names leader {} at {:?}, not {new_address}",
                new_status.id,
                s.leader_resp_addr
            );
        }
    }

    let survivors = c.live();
    acked.extend(
        write_batch(&c, &survivors, 4, 25, "b")
            .await
            .context("phase 2: SETs after the leader was killed")?,
    );
    verify_reads(&c, &survivors, &acked)
        .await
        .context("phase 2: acknowledged SETs on the survivors")?;

    c.restart(old_leader)
        .await
        .context("phase 3: restarting the killed node")?;
    let target = max_commit(&c, &survivors).await?;
    c.wait_applied(old_leader, target, CATCH_UP_BUDGET)
        .await
        .context("phase 3: restarted node catching up")?;
    c.wait_for_leader(ELECTION_BUDGET)
        .await
        .context("phase 3: all three agree on a leader")?;
    verify_reads(&c, &[old_leader], &acked)
        .await
        .context("phase 3: acknowledged SETs on the restarted node")?;

    let leader_now = c.wait_for_leader(ELECTION_BUDGET).await?;
    let victim = if leader_now != old_leader {
        leader_now
    } else {
        survivors[0]
    };
    c.stop(victim)
        .await
        .context("phase 4: stopping one of the other two")?;
    let remaining = c.live();
    c.wait_for_leader(ELECTION_BUDGET)
        .await
        .context("phase 4: electing a leader among the restarted node and one other")?;
    acked.extend(
        write_batch(&c, &remaining, 4, 25, "c")
            .await
            .context("phase 4: SETs with the restarted node and one other")?,
    );
    verify_reads(&c, &remaining, &acked)
        .await
        .context("phase 4: all acknowledged SETs")?;

    c.shutdown();
    Ok(())
}

/// One node: SET/GET/DEL/EXISTS/DBSIZE through the `redis` crate, and data that
/// survives a graceful restart and a `kill -9`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_basic_commands_and_restart_keep_data() -> Result<()> {
    let mut c = Cluster::start(1).await?;
    let mut conn = c.client(0).await?;

    let ok: String = redis::cmd("SET")
        .arg("k1")
        .arg("v1")
        .query_async(&mut conn)
        .await?;
    ensure!(ok == "OK", "SET k1 v1 -> {ok:?}");
    let ok: String = redis::cmd("SET")
        .arg("k2")
        .arg("v2")
        .query_async(&mut conn)
        .await?;
    ensure!(ok == "OK", "SET k2 v2 -> {ok:?}");
    let v: Option<String> = redis::cmd("GET").arg("k1").query_async(&mut conn).await?;
    ensure!(v.as_deref() == Some("v1"), "GET k1 -> {v:?}");
    let v: Option<String> = redis::cmd("GET")
        .arg("missing")
        .query_async(&mut conn)
        .await?;
    ensure!(v.is_none(), "GET missing -> {v:?}");
    let n: i64 = redis::cmd("EXISTS")
        .arg("k1")
        .arg("k2")
        .arg("missing")
        .arg("k1")
        .query_async(&mut conn)
        .await?;
    ensure!(
        n == 3,
        "EXISTS k1 k2 missing k1 -> {n} (Redis counts repeats)"
    );
    let n: i64 = redis::cmd("DBSIZE").query_async(&mut conn).await?;
    ensure!(n == 2, "DBSIZE -> {n}");
    let n: i64 = redis::cmd("DEL")
        .arg("k1")
        .arg("missing")
        .query_async(&mut conn)
        .await?;
    ensure!(n == 1, "DEL k1 missing -> {n}");
    let v: Option<String> = redis::cmd("GET").arg("k1").query_async(&mut conn).await?;
    ensure!(v.is_none(), "GET k1 after DEL -> {v:?}");
    let n: i64 = redis::cmd("EXISTS")
        .arg("k1")
        .query_async(&mut conn)
        .await?;
    ensure!(n == 0, "EXISTS k1 after DEL -> {n}");
    let n: i64 = redis::cmd("DBSIZE").query_async(&mut conn).await?;
    ensure!(n == 1, "DBSIZE after DEL -> {n}");
    drop(conn);

    c.stop(0).await.context("graceful stop")?;
    c.restart(0).await.context("restart after graceful stop")?;
    c.wait_for_leader(ELECTION_BUDGET).await?;
    let mut client = RetryClient::new(c.resp_addr(0));
    let v = client.get("k2", READ_BUDGET).await?;
    ensure!(v.as_deref() == Some("v2"), "GET k2 after restart -> {v:?}");
    let v = client.get("k1", READ_BUDGET).await?;
    ensure!(v.is_none(), "GET k1 (deleted) after restart -> {v:?}");
    client.set_acked("k3", "v3", WRITE_BUDGET).await?;

    c.kill9(0)?;
    c.restart(0).await.context("restart after kill -9")?;
    c.wait_for_leader(ELECTION_BUDGET).await?;
    let mut client = RetryClient::new(c.resp_addr(0));
    for (key, want) in [("k2", Some("v2")), ("k3", Some("v3")), ("k1", None)] {
        let got = client.get(key, READ_BUDGET).await?;
        ensure!(
            got.as_deref() == want,
            "GET {key} after kill -9 and restart -> {got:?}, want {want:?}"
        );
    }
    let n: i64 = client
        .query_retry(
            &redis::cmd("DBSIZE"),
            READ_BUDGET,
            dkv_integration::is_retryable,
        )
        .await?;
    ensure!(n == 2, "DBSIZE after kill -9 and restart -> {n}");

    c.shutdown();
    Ok(())
}

/// One node: `/status` reports itself as leader, `/health` answers 200 and `/metrics` is
/// Prometheus text with the Raft gauges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_http_endpoints() -> Result<()> {
    let c = Cluster::start(1).await?;
    let s = c.status(0).await?;
    ensure!(
        s.is_leader() && s.id == 1 && s.leader == Some(1),
        "single node /status: {s:?}"
    );
    ensure!(
        s.last_applied <= s.commit_index && s.commit_index <= s.last_log_index,
        "/status indexes out of order: {s:?}"
    );
    ensure!(!s.loading, "/status says loading after start: {s:?}");
    let health = c.http_get(0, "/health").await?;
    ensure!(
        health.status == 200,
        "GET /health -> HTTP {}",
        health.status
    );
    let metrics = c.http_get(0, "/metrics").await?;
    ensure!(
        metrics.status == 200,
        "GET /metrics -> HTTP {}",
        metrics.status
    );
    let text = metrics.text();
    for name in ["dkv_raft_term", "dkv_raft_commit_index"] {
        ensure!(
            text.lines().any(|l| l.starts_with(name)),
            "/metrics has no {name} sample; first lines:\n{}",
            text.lines().take(20).collect::<Vec<_>>().join("\n")
        );
    }
    c.shutdown();
    Ok(())
}

/// 3 nodes, two killed: the survivor has no leader, so a write and a read each get
/// `-CLUSTERDOWN` after the server's bounded wait (1 s here), never a hang. Restarting
/// one killed node restores a majority and writes succeed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_loss_gives_clusterdown_then_recovers() -> Result<()> {
    let mut c = Cluster::start_with(3, |cfg| cfg.request_timeout_ms = 1000).await?;
    let mut client = RetryClient::new(c.resp_addr(0));
    client.set_acked("before", "1", WRITE_BUDGET).await?;

    let leader = c.leader();
    let survivor = (0..3).find(|&i| i != leader).context("a non-leader")?;
    let other = (0..3)
        .find(|&i| i != leader && i != survivor)
        .context("a third node")?;
    c.kill9(leader)?;
    c.kill9(other)?;

    // Wait until the survivor itself no longer believes in a leader, so the answer does
    // not depend on a forward racing the kill.
    let deadline = tokio::time::Instant::now() + ELECTION_BUDGET;
    loop {
        let s = c.status(survivor).await?;
        if s.leader.is_none() && !s.is_leader() {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "survivor still reports a leader {ELECTION_BUDGET:?} after losing its quorum: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut conn = c.client(survivor).await?;
    let mut wrong = Vec::new();
    for (what, cmd) in [
        (
            "SET during x",
            redis::cmd("SET").arg("during").arg("x").clone(),
        ),
        ("GET before", redis::cmd("GET").arg("before").clone()),
    ] {
        let result: redis::RedisResult<Option<String>> = cmd.query_async(&mut conn).await;
        match result {
            Err(e)
                if e.code() == Some("CLUSTERDOWN")
                    && e.detail().unwrap_or_default().contains("No raft leader") => {}
            other => wrong.push(format!(
                "{what} without quorum -> {other:?}, want -CLUSTERDOWN No raft leader"
            )),
        }
    }
    ensure!(
        wrong.is_empty(),
        "survivor status: {:?}\n{}",
        c.status(survivor).await,
        wrong.join("\n")
    );

    c.restart(leader).await?;
    c.wait_for_leader(ELECTION_BUDGET)
        .await
        .context("two of three nodes must elect a leader")?;
    let mut client = RetryClient::new(c.resp_addr(survivor));
    client.set_acked("after", "2", WRITE_BUDGET).await?;
    for (key, want) in [("before", "1"), ("after", "2")] {
        let got = client.get(key, READ_BUDGET).await?;
        ensure!(got.as_deref() == Some(want), "GET {key} -> {got:?}");
    }
    c.shutdown();
    Ok(())
}

/// WAIT on a real cluster: on the leader, both followers once they have the
/// write (timeout 0 waits until they do); with one follower paused, the one
/// that has it, after the timeout; on a follower, the one other member a
/// majority proves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_counts_the_followers_that_hold_the_write() -> Result<()> {
    let mut c = Cluster::start(3).await?;
    c.wait_for_leader(ELECTION_BUDGET).await?;
    let leader = c.leader();
    let follower = (0..3).find(|&i| i != leader).context("a follower")?;
    let mut conn = c.client(leader).await?;
    let wait = |n: i64, ms: u64| redis::cmd("WAIT").arg(n).arg(ms).clone();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("1")
        .query_async(&mut conn)
        .await?;
    let both: i64 = wait(2, 0).query_async(&mut conn).await?;
    ensure!(both == 2, "WAIT 2 0 on the leader -> {both}");

    c.pause(follower)?;
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("2")
        .query_async(&mut conn)
        .await?;
    let one: i64 = wait(2, 300).query_async(&mut conn).await?;
    // What the leader knew when WAIT answered, for a failure's message
    // (this once answered 2; the cause is not yet known).
    let seen = match c.http_get(leader, "/status").await {
        Ok(resp) => resp.text(),
        Err(e) => format!("<no status: {e:#}>"),
    };
    c.resume(follower)?;
    ensure!(
        one == 1,
        "WAIT 2 300 with node {follower} paused -> {one}, want 1; leader {leader}'s status:\n{seen}\n{}",
        c.log_report()
    );

    let mut on_follower = c.client(follower).await?;
    let there: i64 = wait(1, 0).query_async(&mut on_follower).await?;
    ensure!(there == 1, "WAIT 1 0 on a follower -> {there}");
    c.shutdown();
    Ok(())
}

/// FAILOVER on a real cluster: a follower refuses it; the leader answers
/// +OK at once, the named follower leads shortly after (ROLE says so on
/// both), INFO shows the failover until it ends, and the write
/// acknowledged before it reads back from the new leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_hands_leadership_to_the_named_replica() -> Result<()> {
    let mut c = Cluster::start(3).await?;
    c.wait_for_leader(ELECTION_BUDGET).await?;
    let leader = c.leader();
    let target = (0..3).find(|&i| i != leader).context("a follower")?;
    let addr = c.resp_addr(target);
    let mut on_leader = c.client(leader).await?;
    let _: () = redis::cmd("SET")
        .arg("before")
        .arg("failover")
        .query_async(&mut on_leader)
        .await?;
    let mut on_target = c.client(target).await?;
    let refused: redis::RedisResult<()> = redis::cmd("FAILOVER").query_async(&mut on_target).await;
    let text = format!("{refused:?}");
    ensure!(
        text.contains("FAILOVER is not valid when server is a replica."),
        "FAILOVER on a follower -> {text}"
    );
    let _: () = redis::cmd("FAILOVER")
        .arg("TO")
        .arg(addr.ip().to_string())
        .arg(addr.port())
        .arg("TIMEOUT")
        .arg(10_000)
        .query_async(&mut on_leader)
        .await?;
    let deadline = tokio::time::Instant::now() + ELECTION_BUDGET;
    loop {
        let role: redis::Value = redis::cmd("ROLE").query_async(&mut on_target).await?;
        let leads = matches!(&role, redis::Value::Array(items)
            if items.first() == Some(&redis::Value::BulkString(b"master".to_vec())));
        if leads {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "node {target} never led after FAILOVER: ROLE {role:?}\n{}",
            c.log_report()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = tokio::time::Instant::now() + ELECTION_BUDGET;
    loop {
        let role: redis::Value = redis::cmd("ROLE").query_async(&mut on_leader).await?;
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut on_leader)
            .await?;
        let follows = matches!(&role, redis::Value::Array(items)
            if items.first() == Some(&redis::Value::BulkString(b"slave".to_vec())));
        if follows && info.contains("master_failover_state:no-failover") {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the old leader still says ROLE {role:?}, INFO:\n{info}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let value: String = redis::cmd("GET")
        .arg("before")
        .query_async(&mut on_target)
        .await?;
    ensure!(
        value == "failover",
        "GET before on the new leader -> {value}"
    );
    c.shutdown();
    Ok(())
}

/// SAVE, BGSAVE and SHUTDOWN on a real cluster: SAVE answers once a new
/// snapshot is on disk (INFO's `rdb_snapshot_index` moves past the writes
/// before it); SHUTDOWN on the leader closes the client's connection without
/// a reply, hands leadership to another node and exits 0; the other two
/// keep serving the data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_snapshots_now_and_shutdown_stops_the_node_as_sigterm_does() -> Result<()> {
    let mut c = Cluster::start(3).await?;
    c.wait_for_leader(ELECTION_BUDGET).await?;
    let leader = c.leader();
    let mut on_leader = c.client(leader).await?;
    for i in 0..20 {
        let _: () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(i)
            .query_async(&mut on_leader)
            .await?;
    }
    let snapshot_index = |info: &str| -> Result<u64> {
        info.lines()
            .find_map(|l| l.strip_prefix("rdb_snapshot_index:"))
            .context("rdb_snapshot_index in INFO")?
            .trim()
            .parse()
            .context("rdb_snapshot_index is a number")
    };
    let applied: String = redis::cmd("INFO")
        .arg("persistence")
        .query_async(&mut on_leader)
        .await?;
    let before = snapshot_index(&applied)?;
    let status = c.status(leader).await?;
    let ok: String = redis::cmd("SAVE").query_async(&mut on_leader).await?;
    ensure!(ok == "OK", "SAVE -> {ok}");
    let info: String = redis::cmd("INFO")
        .arg("persistence")
        .query_async(&mut on_leader)
        .await?;
    let after = snapshot_index(&info)?;
    ensure!(
        after > before && after >= status.last_applied,
        "SAVE left rdb_snapshot_index at {after} (before {before}, applied {})",
        status.last_applied
    );
    // Nothing applied since: the snapshot on disk is current.
    let started: String = redis::cmd("BGSAVE").query_async(&mut on_leader).await?;
    ensure!(
        started == "Background saving started",
        "BGSAVE -> {started}"
    );

    // SHUTDOWN over a raw socket: the connection closes with no reply.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut raw = tokio::net::TcpStream::connect(c.resp_addr(leader)).await?;
    raw.write_all(b"*1\r\n$8\r\nSHUTDOWN\r\n").await?;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), raw.read_to_end(&mut buf)).await;
    ensure!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))) && buf.is_empty(),
        "SHUTDOWN should close without a reply: {read:?} {:?}",
        String::from_utf8_lossy(&buf)
    );
    let exited = c.wait_exited(leader, Duration::from_secs(20)).await?;
    ensure!(exited.success(), "the node exited with {exited}");
    let log = c.log_tail(leader, 200);
    ensure!(
        log.contains("a client sent SHUTDOWN")
            && log.contains("leadership transferred before exit"),
        "the leader's log should show the shutdown and the handover:\n{log}"
    );
    let next = c.wait_for_leader(ELECTION_BUDGET).await?;
    ensure!(next != leader, "a new leader");
    let mut on_next = c.client(next).await?;
    let value: String = redis::cmd("GET")
        .arg("k19")
        .query_async(&mut on_next)
        .await?;
    ensure!(value == "19", "GET k19 after the shutdown -> {value}");
    c.shutdown();
    Ok(())
}
