//! Blocking pops on a real 3-node cluster (issue 13): a client blocked on a
//! follower or on the leader is served by a push sent to any node, clients
//! blocked on one node are served in the order they blocked, a blocked
//! client survives a leader change, and a BLMOVE work queue consumed from
//! every node delivers each job exactly once.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use dkv_integration::client::connect;
use dkv_integration::Cluster;
use redis::aio::MultiplexedConnection;
use redis::Value;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Bound on waiting for a blocked client's reply (the connection's own bound
/// is `dkv_integration::client::RESPONSE_TIMEOUT`).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// `BLPOP`/`BRPOP`/`BZPOPMIN` reply as strings (nil: empty).
fn strings(value: Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.into_iter().flat_map(strings).collect(),
        Value::BulkString(b) => vec![String::from_utf8_lossy(&b).into_owned()],
        Value::Double(d) => vec![d.to_string()],
        Value::Int(n) => vec![n.to_string()],
        _ => Vec::new(),
    }
}

/// Spawns `args` on a new connection to `addr`, after `delay`.
fn blocked(
    set: &mut JoinSet<Result<(usize, Vec<String>)>>,
    tag: usize,
    addr: SocketAddr,
    args: &'static [&'static str],
) {
    set.spawn(async move {
        let mut conn = connect(addr).await?;
        let reply: Value = redis::cmd(args[0])
            .arg(&args[1..])
            .query_async(&mut conn)
            .await
            .with_context(|| format!("{args:?}"))?;
        Ok((tag, strings(reply)))
    });
}

/// Gives spawned clients time to block (their order matters, and a push sent
/// before a client blocks would serve it at once, which proves less).
async fn pause() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_clients_are_served_across_nodes_in_order_and_across_a_leader_change() -> Result<()>
{
    let mut cluster = Cluster::start(3).await?;
    let leader = cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let (f1, f2) = (followers[0], followers[1]);

    // Two clients blocked on a follower, in order; one on the leader.
    let mut set = JoinSet::new();
    blocked(&mut set, 1, cluster.resp_addr(f1), &["BLPOP", "q", "0"]);
    pause().await;
    blocked(
        &mut set,
        2,
        cluster.resp_addr(f1),
        &["BLPOP", "q", "other", "0"],
    );
    blocked(
        &mut set,
        3,
        cluster.resp_addr(leader),
        &["BZPOPMIN", "z", "0"],
    );
    pause().await;

    let mut at_leader = connect(cluster.resp_addr(leader)).await?;
    let mut at_f2 = connect(cluster.resp_addr(f2)).await?;
    let _: i64 = redis::cmd("RPUSH")
        .arg(&["q", "a"])
        .query_async(&mut at_leader)
        .await?;
    let first = tokio::time::timeout(COMMAND_TIMEOUT, set.join_next())
        .await?
        .context("a client")???;
    ensure!(
        first == (1, vec!["q".into(), "a".into()]),
        "the first client blocked on q is served first: {first:?}"
    );
    let _: i64 = redis::cmd("RPUSH")
        .arg(&["q", "b"])
        .query_async(&mut at_f2)
        .await?;
    let _: i64 = redis::cmd("ZADD")
        .arg(&["z", "2", "m"])
        .query_async(&mut at_f2)
        .await?;
    let mut rest = Vec::new();
    while let Some(done) = tokio::time::timeout(COMMAND_TIMEOUT, set.join_next()).await? {
        rest.push(done??);
    }
    rest.sort();
    ensure!(
        rest == vec![
            (2, vec!["q".into(), "b".into()]),
            (3, vec!["z".into(), "m".into(), "2".into()]),
        ],
        "{rest:?}"
    );
    let left: i64 = redis::cmd("LLEN")
        .arg("q")
        .query_async(&mut at_leader)
        .await?;
    ensure!(left == 0, "each element popped once: {left} left");

    // A client blocked on a follower survives the leader's loss and is
    // served by the new leader's write.
    let mut set = JoinSet::new();
    blocked(&mut set, 4, cluster.resp_addr(f1), &["BRPOP", "lc", "0"]);
    pause().await;
    cluster.stop(leader).await?;
    let new_leader = cluster.wait_for_leader(Duration::from_secs(30)).await?;
    ensure!(new_leader != leader);
    let mut conn = connect(cluster.resp_addr(new_leader)).await?;
    let _: i64 = redis::cmd("LPUSH")
        .arg(&["lc", "v"])
        .query_async(&mut conn)
        .await?;
    let served = tokio::time::timeout(COMMAND_TIMEOUT, set.join_next())
        .await?
        .context("the client")???;
    ensure!(served == (4, vec!["lc".into(), "v".into()]), "{served:?}");
    cluster.shutdown();
    Ok(())
}

/// Producers push unique ids through every node; consumers on every node
/// BLMOVE them to their own processing list and LREM them when done. Every
/// acknowledged push is delivered exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blmove_queue_consumed_from_every_node_delivers_each_job_once() -> Result<()> {
    const JOBS: usize = 150;
    let mut cluster = Cluster::start(3).await?;
    cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let addrs: Vec<SocketAddr> = (0..3).map(|i| cluster.resp_addr(i)).collect();

    let mut consumers = JoinSet::new();
    for (c, &addr) in addrs.iter().enumerate() {
        consumers.spawn(async move {
            let mut conn = connect(addr).await?;
            let processing = format!("processing:{c}");
            let mut got = Vec::new();
            let mut idle = 0;
            let deadline = Instant::now() + Duration::from_secs(60);
            while idle < 3 && Instant::now() < deadline {
                let job: Option<String> = redis::cmd("BLMOVE")
                    .arg(&["jobs", processing.as_str(), "RIGHT", "LEFT", "1"])
                    .query_async(&mut conn)
                    .await?;
                match job {
                    Some(job) => {
                        idle = 0;
                        let removed: i64 = redis::cmd("LREM")
                            .arg(&processing)
                            .arg(1)
                            .arg(&job)
                            .query_async(&mut conn)
                            .await?;
                        ensure!(removed == 1, "{job} was in {processing}");
                        got.push(job);
                    }
                    None => idle += 1,
                }
            }
            anyhow::Ok(got)
        });
    }
    let mut pushed = BTreeSet::new();
    let mut producers: Vec<MultiplexedConnection> = Vec::new();
    for &addr in &addrs {
        producers.push(connect(addr).await?);
    }
    for job in 0..JOBS {
        let conn = &mut producers[job % 3];
        let id = format!("job-{job}");
        let _: i64 = redis::cmd("LPUSH")
            .arg("jobs")
            .arg(&id)
            .query_async(conn)
            .await?;
        pushed.insert(id);
    }
    let mut delivered = Vec::new();
    while let Some(done) = consumers.join_next().await {
        delivered.extend(done??);
    }
    let unique: BTreeSet<String> = delivered.iter().cloned().collect();
    ensure!(
        unique.len() == delivered.len(),
        "a job delivered twice: {} deliveries, {} distinct",
        delivered.len(),
        unique.len()
    );
    ensure!(
        unique == pushed,
        "lost: {:?}",
        pushed.difference(&unique).collect::<Vec<_>>()
    );
    let mut conn = connect(addrs[0]).await?;
    for key in ["jobs", "processing:0", "processing:1", "processing:2"] {
        let len: i64 = redis::cmd("LLEN").arg(key).query_async(&mut conn).await?;
        ensure!(len == 0, "{key} holds {len}");
    }
    cluster.shutdown();
    Ok(())
}
