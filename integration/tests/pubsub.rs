//! Pub/Sub across a real 3-node cluster (issue 15): subscribers on every
//! node (channel and pattern subscribers), publishers on every node. Every
//! subscriber gets every message exactly once, every subscriber sees one
//! channel's messages in the same order, PUBLISH counts the receivers of the
//! whole cluster, and PUBSUB NUMSUB/NUMPAT count every node's subscribers
//! whichever node answers.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use dkv_integration::resp::{RawConn, Reply};
use dkv_integration::Cluster;
use tokio::task::JoinSet;

/// Messages each publisher sends.
const PER_PUBLISHER: usize = 300;
/// Publishers (one per node).
const PUBLISHERS: usize = 3;
/// Bound on the whole delivery.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

fn bulk(reply: &Reply) -> Option<String> {
    match reply {
        Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

/// A message frame as (channel, payload); None for anything else.
fn message(reply: &Reply) -> Option<(String, String)> {
    let Reply::Array(Some(items)) = reply else {
        return None;
    };
    match (items.first().and_then(bulk).as_deref(), items.len()) {
        (Some("message"), 3) => Some((bulk(&items[1])?, bulk(&items[2])?)),
        (Some("pmessage"), 4) => Some((bulk(&items[2])?, bulk(&items[3])?)),
        _ => None,
    }
}

async fn subscriber(
    addr: std::net::SocketAddr,
    args: &[&[u8]],
    confirms: usize,
) -> Result<RawConn> {
    let mut conn = RawConn::connect(addr).await?;
    conn.send(&dkv_integration::resp::encode(args)).await?;
    for _ in 0..confirms {
        let reply = conn.read_reply(Duration::from_secs(10)).await?;
        let Reply::Array(Some(items)) = &reply else {
            bail!("not a confirmation: {reply:?}");
        };
        ensure!(items.len() == 3, "confirmation {reply:?}");
    }
    Ok(conn)
}

async fn integer(conn: &mut RawConn, args: &[&[u8]]) -> Result<i64> {
    match conn.command(args).await? {
        Reply::Integer(n) => Ok(n),
        other => bail!("{args:?}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscriber_on_every_node_gets_every_message_once_in_one_order() -> Result<()> {
    let mut cluster = Cluster::start(3).await?;
    cluster.wait_for_leader(Duration::from_secs(20)).await?;

    // Per node: one channel subscriber (two channels) and one pattern
    // subscriber.
    let mut subscribers = Vec::new();
    for node in 0..3 {
        let addr = cluster.resp_addr(node);
        subscribers.push(subscriber(addr, &[b"SUBSCRIBE", b"ch1", b"ch2"], 2).await?);
        subscribers.push(subscriber(addr, &[b"PSUBSCRIBE", b"ch*"], 1).await?);
    }

    // Introspection counts every node, whichever node answers.
    for node in 0..3 {
        let mut conn = RawConn::connect(cluster.resp_addr(node)).await?;
        let numsub = conn
            .command(&[b"PUBSUB", b"NUMSUB", b"ch1", b"none"])
            .await?;
        let expected = Reply::Array(Some(vec![
            Reply::Bulk(Some(b"ch1".to_vec())),
            Reply::Integer(3),
            Reply::Bulk(Some(b"none".to_vec())),
            Reply::Integer(0),
        ]));
        ensure!(numsub == expected, "node {node}: NUMSUB {numsub:?}");
        ensure!(integer(&mut conn, &[b"PUBSUB", b"NUMPAT"]).await? == 1);
        let channels = conn.command(&[b"PUBSUB", b"CHANNELS"]).await?;
        ensure!(
            channels
                == Reply::Array(Some(vec![
                    Reply::Bulk(Some(b"ch1".to_vec())),
                    Reply::Bulk(Some(b"ch2".to_vec()))
                ])),
            "node {node}: CHANNELS {channels:?}"
        );
    }

    // Readers: each subscriber collects what it gets.
    let total = PUBLISHERS * PER_PUBLISHER;
    let mut readers = JoinSet::new();
    for (i, mut conn) in subscribers.into_iter().enumerate() {
        readers.spawn(async move {
            let deadline = tokio::time::Instant::now() + DELIVERY_TIMEOUT;
            let mut got = Vec::with_capacity(total);
            while got.len() < total {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                let reply = conn
                    .read_reply(left)
                    .await
                    .with_context(|| format!("subscriber {i} after {} messages", got.len()))?;
                let m = message(&reply).with_context(|| format!("not a message: {reply:?}"))?;
                got.push(m);
            }
            // Nothing more: no duplicate trails behind.
            let extra = conn.read_reply(Duration::from_millis(500)).await;
            ensure!(extra.is_err(), "subscriber {i} got more: {extra:?}");
            Ok::<_, anyhow::Error>((i, got))
        });
    }

    // Publishers: one per node, alternating channels; every PUBLISH counts
    // the 3 channel subscribers and the 3 pattern subscribers.
    let mut publishers = JoinSet::new();
    for p in 0..PUBLISHERS {
        let addr = cluster.resp_addr(p);
        publishers.spawn(async move {
            let mut conn = RawConn::connect(addr).await?;
            for seq in 0..PER_PUBLISHER {
                let channel: &[u8] = if seq % 2 == 0 { b"ch1" } else { b"ch2" };
                let payload = format!("p{p}-{seq}");
                let n = integer(&mut conn, &[b"PUBLISH", channel, payload.as_bytes()]).await?;
                ensure!(n == 6, "PUBLISH {payload} counted {n}");
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(done) = publishers.join_next().await {
        done??;
    }

    let mut orders: BTreeMap<usize, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    while let Some(done) = readers.join_next().await {
        let (i, got) = done??;
        let distinct: BTreeSet<&(String, String)> = got.iter().collect();
        ensure!(
            distinct.len() == total,
            "subscriber {i}: {} distinct of {} received",
            distinct.len(),
            got.len()
        );
        let mut per_channel: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (channel, payload) in got {
            per_channel.entry(channel).or_default().push(payload);
        }
        orders.insert(i, per_channel);
    }
    let first = orders.values().next().context("no subscriber")?.clone();
    for (i, order) in &orders {
        ensure!(*order == first, "subscriber {i} saw another order");
    }
    // Each publisher's own messages keep their order within a channel.
    for payloads in first.values() {
        let mut last: BTreeMap<&str, usize> = BTreeMap::new();
        for payload in payloads {
            let (publisher, seq) = payload.split_once('-').context("payload")?;
            let seq: usize = seq.parse()?;
            if let Some(prev) = last.insert(publisher, seq) {
                ensure!(prev < seq, "{publisher}: {seq} after {prev}");
            }
        }
    }
    eprintln!(
        "{} subscribers x {total} messages: each once, one order per channel",
        orders.len()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_subscriber_leaves_the_registry_of_every_node() -> Result<()> {
    let mut cluster = Cluster::start(3).await?;
    cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let conn = subscriber(cluster.resp_addr(1), &[b"SUBSCRIBE", b"gone"], 1).await?;
    let mut other = RawConn::connect(cluster.resp_addr(2)).await?;
    ensure!(integer(&mut other, &[b"PUBLISH", b"gone", b"x"]).await? == 1);
    conn.close().await;
    // The close becomes a log entry; bounded wait for it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let n = integer(&mut other, &[b"PUBLISH", b"gone", b"y"]).await?;
        if n == 0 {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the closed subscriber is still counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
