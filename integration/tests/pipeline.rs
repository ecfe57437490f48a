//! Pipelined writes on real processes: one connection's pipelined writes are
//! proposed as one ordered batch (forwarded together by a follower), so they apply
//! in request order, and a read later in the same pipeline sees them — as Redis
//! runs a pipeline one command after the other.

use std::time::Duration;

use anyhow::{ensure, Result};
use dkv_integration::Cluster;

const ELECTION_BUDGET: Duration = Duration::from_secs(20);
const DEPTH: usize = 300;

async fn pipeline_keeps_order_on(c: &Cluster, node: usize) -> Result<()> {
    let mut conn = c.client(node).await?;
    let counter = format!("ctr:{node}");
    let log = format!("log:{node}");
    let mut pipe = redis::pipe();
    for i in 0..DEPTH {
        pipe.cmd("INCR").arg(&counter);
        pipe.cmd("APPEND").arg(&log).arg(format!("{i},"));
        if i % 50 == 49 {
            // A read in the middle sees every write before it, none after.
            pipe.cmd("GET").arg(&counter);
        }
    }
    pipe.cmd("GET").arg(&log);
    let replies: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
    let mut replies = replies.into_iter();
    let mut expected_log = String::new();
    for i in 0..DEPTH {
        let incr = replies.next();
        ensure!(
            incr == Some(redis::Value::Int(i as i64 + 1)),
            "node {node}: INCR #{i} answered {incr:?}: pipelined writes applied out of order"
        );
        expected_log.push_str(&format!("{i},"));
        let append = replies.next();
        ensure!(
            append == Some(redis::Value::Int(expected_log.len() as i64)),
            "node {node}: APPEND #{i} answered {append:?}, expected length {}",
            expected_log.len()
        );
        if i % 50 == 49 {
            let get = replies.next();
            let want = redis::Value::BulkString((i + 1).to_string().into_bytes());
            ensure!(
                get.as_ref() == Some(&want),
                "node {node}: GET after INCR #{i} saw {get:?}, expected {}",
                i + 1
            );
        }
    }
    let final_log = replies.next();
    ensure!(
        final_log == Some(redis::Value::BulkString(expected_log.clone().into_bytes())),
        "node {node}: the log built by pipelined APPENDs is out of order: {final_log:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_writes_apply_in_order_on_leader_and_followers() -> Result<()> {
    let mut c = Cluster::start(3).await?;
    let leader = c.wait_for_leader(ELECTION_BUDGET).await?;
    for node in [leader, (leader + 1) % 3, (leader + 2) % 3] {
        pipeline_keeps_order_on(&c, node).await?;
    }
    c.shutdown();
    Ok(())
}

/// Values of several MiB, pipelined to the leader, make AppendEntries larger
/// than a stream frame's byte budget (4 MiB): each must still reach every
/// follower, one frame per large message, and read back whole everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_multi_megabyte_values_replicate_to_every_node() -> Result<()> {
    const VALUES: usize = 6;
    const VALUE_BYTES: usize = 5 << 20;
    let mut c = Cluster::start(3).await?;
    let leader = c.wait_for_leader(ELECTION_BUDGET).await?;
    let mut conn = c.client(leader).await?;
    let mut pipe = redis::pipe();
    for i in 0..VALUES {
        pipe.cmd("SET")
            .arg(format!("big:{i}"))
            .arg(vec![b'a' + i as u8; VALUE_BYTES])
            .ignore();
    }
    let () = pipe.query_async(&mut conn).await?;
    for node in 0..3 {
        let mut conn = c.client(node).await?;
        for i in 0..VALUES {
            let value: Vec<u8> = redis::cmd("GET")
                .arg(format!("big:{i}"))
                .query_async(&mut conn)
                .await?;
            ensure!(
                value.len() == VALUE_BYTES && value.iter().all(|&b| b == b'a' + i as u8),
                "node {node}: big:{i} is {} bytes, not {VALUE_BYTES} of {:?}",
                value.len(),
                (b'a' + i as u8) as char
            );
        }
    }
    c.shutdown();
    Ok(())
}
