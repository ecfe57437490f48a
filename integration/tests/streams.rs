//! Streams on a real 3-node cluster (issue 16): a reader blocked with
//! `XREAD BLOCK` on a follower is woken by an XADD through the leader, and
//! `XREADGROUP BLOCK ... >` on two nodes delivers each entry to exactly one
//! of the two blocked consumers; the group's pending list is the same on
//! every node.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use dkv_integration::client::connect;
use dkv_integration::Cluster;
use redis::Value;
use tokio::task::JoinSet;

/// Bound on waiting for a blocked client's reply.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Every bulk string in a reply, depth first.
fn strings(value: Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.into_iter().flat_map(strings).collect(),
        Value::Map(pairs) => pairs
            .into_iter()
            .flat_map(|(k, v)| strings(k).into_iter().chain(strings(v)))
            .collect(),
        Value::BulkString(b) => vec![String::from_utf8_lossy(&b).into_owned()],
        Value::Int(n) => vec![n.to_string()],
        _ => Vec::new(),
    }
}

/// Gives spawned clients time to block.
async fn pause() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_stream_readers_on_followers_are_woken_by_the_leaders_xadd() -> Result<()> {
    let mut cluster = Cluster::start(3).await?;
    let leader = cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let mut at_leader = connect(cluster.resp_addr(leader)).await?;

    // XREAD BLOCK $ on a follower: only entries added after it count.
    let _: String = redis::cmd("XADD")
        .arg(&["s", "1-0", "old", "1"])
        .query_async(&mut at_leader)
        .await?;
    let reader_addr = cluster.resp_addr(followers[0]);
    let reader = tokio::spawn(async move {
        let mut conn = connect(reader_addr).await?;
        let reply: Value = redis::cmd("XREAD")
            .arg(&["BLOCK", "0", "STREAMS", "s", "$"])
            .query_async(&mut conn)
            .await?;
        anyhow::Ok(strings(reply))
    });
    pause().await;
    ensure!(!reader.is_finished(), "XREAD BLOCK $ waits for a new entry");
    let _: String = redis::cmd("XADD")
        .arg(&["s", "2-0", "new", "2"])
        .query_async(&mut at_leader)
        .await?;
    let got = tokio::time::timeout(COMMAND_TIMEOUT, reader).await???;
    ensure!(
        got == ["s", "2-0", "new", "2"],
        "the reader gets the new entry only: {got:?}"
    );

    // Two consumers of one group blocked on two different nodes.
    let _: String = redis::cmd("XGROUP")
        .arg(&["CREATE", "s", "g", "$"])
        .query_async(&mut at_leader)
        .await?;
    let mut set = JoinSet::new();
    for (name, node) in [("c1", followers[0]), ("c2", followers[1])] {
        let addr = cluster.resp_addr(node);
        set.spawn(async move {
            let mut conn = connect(addr).await?;
            let reply: Value = redis::cmd("XREADGROUP")
                .arg(&["GROUP", "g", name, "COUNT", "1", "BLOCK", "0"])
                .arg(&["STREAMS", "s", ">"])
                .query_async(&mut conn)
                .await?;
            anyhow::Ok((name, strings(reply)))
        });
    }
    pause().await;
    let mut delivered = BTreeSet::new();
    for i in 0..2 {
        let id = format!("{}-0", 10 + i);
        let _: String = redis::cmd("XADD")
            .arg(&["s", id.as_str(), "job", &i.to_string()])
            .query_async(&mut at_leader)
            .await?;
        let (name, got) = tokio::time::timeout(COMMAND_TIMEOUT, set.join_next())
            .await?
            .context("a consumer")???;
        ensure!(got.len() == 4 && got[1] == id, "{name} got {got:?}");
        ensure!(delivered.insert(name), "{name} served twice");
    }
    ensure!(delivered.len() == 2, "each consumer got one entry");

    // The pending list is replicated state: the same on every node.
    let mut views = Vec::new();
    for node in 0..3 {
        let mut conn = connect(cluster.resp_addr(node)).await?;
        let reply: Value = redis::cmd("XPENDING")
            .arg(&["s", "g", "-", "+", "10"])
            .query_async(&mut conn)
            .await?;
        let ids: Vec<String> = strings(reply)
            .into_iter()
            .filter(|s| s.ends_with("-0"))
            .collect();
        views.push(ids);
    }
    ensure!(
        views.iter().all(|v| v == &["10-0", "11-0"]),
        "PEL on each node: {views:?}"
    );
    cluster.shutdown();
    Ok(())
}
