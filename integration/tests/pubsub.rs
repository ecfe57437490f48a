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

// ---- one connection's Pub/Sub behaviour, as Redis 7.0.15 answers ------------

/// Redis 7.0.15's reply to a command a RESP2 subscriber may not send.
fn not_allowed(command: &str) -> Reply {
    Reply::Error(format!(
        "ERR Can't execute '{command}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
    ))
}

fn bulks(items: &[&[u8]]) -> Reply {
    Reply::Array(Some(
        items
            .iter()
            .map(|i| Reply::Bulk(Some(i.to_vec())))
            .collect(),
    ))
}

fn confirmation(word: &[u8], name: &[u8], count: i64) -> Reply {
    Reply::Array(Some(vec![
        Reply::Bulk(Some(word.to_vec())),
        Reply::Bulk(Some(name.to_vec())),
        Reply::Integer(count),
    ]))
}

/// RESP2 subscribed mode as Redis answers it: only the Pub/Sub commands,
/// PING, QUIT and RESET; PING answers `pong` as an array; RESET leaves
/// every subscription (nothing is delivered or counted after it) and
/// normal commands work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp2_subscribed_mode_allows_only_pubsub_commands_until_reset() -> Result<()> {
    let mut cluster = Cluster::start(1).await?;
    cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let addr = cluster.resp_addr(0);
    let mut conn = subscriber(addr, &[b"SUBSCRIBE", b"ch"], 1).await?;
    let mut other = RawConn::connect(addr).await?;

    for (args, name) in [
        (&[&b"GET"[..], b"k"][..], "get"),
        (&[b"SET", b"k", b"v"], "set"),
        (&[b"PUBLISH", b"ch", b"x"], "publish"),
        (&[b"MULTI"], "multi"),
    ] {
        let reply = conn.command(args).await?;
        ensure!(reply == not_allowed(name), "{name}: {reply:?}");
    }
    ensure!(conn.command(&[b"PING"]).await? == bulks(&[b"pong", b""]));
    ensure!(conn.command(&[b"PING", b"hi"]).await? == bulks(&[b"pong", b"hi"]));
    // Still subscribed: a message arrives.
    ensure!(integer(&mut other, &[b"PUBLISH", b"ch", b"m1"]).await? == 1);
    let frame = conn.read_reply(Duration::from_secs(10)).await?;
    ensure!(frame == bulks(&[b"message", b"ch", b"m1"]), "{frame:?}");

    ensure!(conn.command(&[b"RESET"]).await? == Reply::Simple("RESET".into()));
    ensure!(conn.command(&[b"GET", b"k"]).await? == Reply::Bulk(None));
    let pong = conn.command(&[b"PING"]).await?;
    ensure!(
        pong == Reply::Simple("PONG".into()),
        "PING after RESET: {pong:?}"
    );
    ensure!(integer(&mut other, &[b"PUBLISH", b"ch", b"m2"]).await? == 0);
    let nothing = conn.read_reply(Duration::from_millis(300)).await;
    ensure!(nothing.is_err(), "a frame after RESET: {nothing:?}");

    // Unsubscribing everything leaves subscribed mode too.
    let mut conn = subscriber(addr, &[b"SUBSCRIBE", b"a"], 1).await?;
    conn.send(&dkv_integration::resp::encode(&[b"UNSUBSCRIBE"]))
        .await?;
    let reply = conn.read_reply(Duration::from_secs(10)).await?;
    ensure!(reply == confirmation(b"unsubscribe", b"a", 0), "{reply:?}");
    let pong = conn.command(&[b"PING"]).await?;
    ensure!(
        pong == Reply::Simple("PONG".into()),
        "PING after UNSUBSCRIBE: {pong:?}"
    );
    Ok(())
}

/// ACL channel permissions refuse with Redis's text: SUBSCRIBE and PUBLISH
/// of a channel outside the user's `&` patterns, and a PSUBSCRIBE pattern
/// that is not one of them literally; `resetchannels` takes every channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_channel_permissions_refuse_with_redis_text() -> Result<()> {
    let mut cluster = Cluster::start(1).await?;
    cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let addr = cluster.resp_addr(0);
    let mut admin = RawConn::connect(addr).await?;
    let setuser = admin
        .command(&[
            b"ACL",
            b"SETUSER",
            b"u",
            b"on",
            b">pw",
            b"~*",
            b"+@all",
            b"resetchannels",
            b"&news*",
        ])
        .await?;
    ensure!(setuser == Reply::Simple("OK".into()), "{setuser:?}");
    let noperm = Reply::Error(
        "NOPERM this user has no permissions to access one of the channels used as arguments"
            .into(),
    );
    let mut conn = RawConn::connect(addr).await?;
    ensure!(conn.command(&[b"AUTH", b"u", b"pw"]).await? == Reply::Simple("OK".into()));
    for args in [
        &[&b"SUBSCRIBE"[..], b"other"][..],
        &[b"PUBLISH", b"other", b"x"],
        &[b"SPUBLISH", b"other", b"x"],
        &[b"PSUBSCRIBE", b"n*"],
        &[b"SUBSCRIBE", b"news1", b"other"],
    ] {
        let reply = conn.command(args).await?;
        ensure!(reply == noperm, "{args:?}: {reply:?}");
    }
    ensure!(integer(&mut conn, &[b"PUBLISH", b"news1", b"x"]).await? == 0);
    let reply = conn.command(&[b"PSUBSCRIBE", b"news*"]).await?;
    ensure!(
        reply == confirmation(b"psubscribe", b"news*", 1),
        "{reply:?}"
    );
    ensure!(conn.command(&[b"RESET"]).await? == Reply::Simple("RESET".into()));

    // resetchannels: nothing at all.
    let reset = admin
        .command(&[b"ACL", b"SETUSER", b"u", b"resetchannels"])
        .await?;
    ensure!(reset == Reply::Simple("OK".into()), "{reset:?}");
    ensure!(conn.command(&[b"AUTH", b"u", b"pw"]).await? == Reply::Simple("OK".into()));
    for args in [
        &[&b"SUBSCRIBE"[..], b"news1"][..],
        &[b"PUBLISH", b"news1", b"x"],
        &[b"PSUBSCRIBE", b"news*"],
    ] {
        let reply = conn.command(args).await?;
        ensure!(reply == noperm, "{args:?}: {reply:?}");
    }
    Ok(())
}

/// A subscriber that does not read is closed by the `pubsub` class of
/// `client-output-buffer-limit` (here a 1 MiB hard limit), its
/// subscription leaves the registry, and the node's memory stays bounded
/// while a publisher keeps sending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_is_closed_at_the_pubsub_output_limit() -> Result<()> {
    let mut cluster = Cluster::start(1).await?;
    cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let addr = cluster.resp_addr(0);
    let mut admin = RawConn::connect(addr).await?;
    let set = admin
        .command(&[
            b"CONFIG",
            b"SET",
            b"client-output-buffer-limit",
            b"pubsub 1mb 512kb 60",
        ])
        .await?;
    ensure!(set == Reply::Simple("OK".into()), "{set:?}");
    // Subscribed, then never read again.
    let slow = subscriber(addr, &[b"SUBSCRIBE", b"firehose"], 1).await?;
    let pid = cluster.pid(0).context("node 0 has no pid")?;
    let rss_before = dkv_integration::rss_bytes(pid)?;
    let payload = vec![b'x'; 64 * 1024];
    let mut most_rss = rss_before;
    let mut closed_after = None;
    // 64 MiB at most: far past the limit, bounded in count.
    for sent in 0..1024 {
        let n = integer(&mut admin, &[b"PUBLISH", b"firehose", &payload]).await?;
        most_rss = most_rss.max(dkv_integration::rss_bytes(pid)?);
        if n == 0 {
            closed_after = Some(sent);
            break;
        }
    }
    let sent = closed_after.context("the slow subscriber was never closed")?;
    drop(slow);
    let numsub = admin.command(&[b"PUBSUB", b"NUMSUB", b"firehose"]).await?;
    ensure!(
        numsub
            == Reply::Array(Some(vec![
                Reply::Bulk(Some(b"firehose".to_vec())),
                Reply::Integer(0)
            ])),
        "still counted: {numsub:?}"
    );
    let grown = most_rss.saturating_sub(rss_before);
    ensure!(
        grown < 48 << 20,
        "RSS grew by {grown} bytes while {sent} messages of 64 KiB were published"
    );
    eprintln!("slow subscriber closed after {sent} messages; RSS grew {grown} bytes");
    Ok(())
}

// ---- keyspace notifications across the cluster ------------------------------

/// Keyspace events are produced where entries are applied: a subscriber
/// on each follower gets the events of writes made through the leader,
/// and of the expirations the leader decides, once each and in the same
/// order as a subscriber on the leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyspace_events_reach_every_node_in_one_order_expirations_included() -> Result<()> {
    const KEYS: usize = 60;
    let mut cluster = Cluster::start(3).await?;
    let leader = cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let mut writer = RawConn::connect(cluster.resp_addr(leader)).await?;
    let set = writer
        .command(&[b"CONFIG", b"SET", b"notify-keyspace-events", b"KEA"])
        .await?;
    ensure!(set == Reply::Simple("OK".into()), "{set:?}");
    let mut subscribers = Vec::new();
    for node in 0..3 {
        let conn = subscriber(cluster.resp_addr(node), &[b"PSUBSCRIBE", b"__key*__:*"], 1).await?;
        subscribers.push((node, conn));
    }
    // Per key: SET PX (set, expire), RPUSH (rpush), INCR (incrby), and
    // later its expiry (expired); each on both channels.
    let frames = KEYS * 5 * 2;
    let mut readers = JoinSet::new();
    for (node, mut conn) in subscribers {
        readers.spawn(async move {
            let deadline = tokio::time::Instant::now() + DELIVERY_TIMEOUT;
            let mut got = Vec::with_capacity(frames);
            while got.len() < frames {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                let reply = conn
                    .read_reply(left)
                    .await
                    .with_context(|| format!("node {node} after {} events", got.len()))?;
                got.push(message(&reply).with_context(|| format!("not a message: {reply:?}"))?);
            }
            let extra = conn.read_reply(Duration::from_millis(500)).await;
            ensure!(extra.is_err(), "node {node} got more: {extra:?}");
            Ok::<_, anyhow::Error>((node, got))
        });
    }
    for i in 0..KEYS {
        let key = format!("e{i}");
        let reply = writer
            .command(&[b"SET", key.as_bytes(), b"v", b"PX", b"300"])
            .await?;
        ensure!(reply == Reply::Simple("OK".into()), "{reply:?}");
        integer(&mut writer, &[b"RPUSH", b"list", key.as_bytes()]).await?;
        integer(&mut writer, &[b"INCR", b"n"]).await?;
    }
    let mut streams = BTreeMap::new();
    while let Some(done) = readers.join_next().await {
        let (node, got) = done??;
        streams.insert(node, got);
    }
    let on_leader = streams.get(&leader).context("no leader stream")?.clone();
    let expired = on_leader
        .iter()
        .filter(|(channel, _)| channel == "__keyevent@0__:expired")
        .count();
    ensure!(expired == KEYS, "{expired} expired events, want {KEYS}");
    let keys: BTreeSet<&String> = on_leader
        .iter()
        .filter(|(channel, _)| channel == "__keyevent@0__:expired")
        .map(|(_, key)| key)
        .collect();
    ensure!(keys.len() == KEYS, "an expiry was sent twice");
    for (node, stream) in &streams {
        ensure!(
            *stream == on_leader,
            "node {node}'s events differ from the leader's ({leader})"
        );
    }
    Ok(())
}

/// SUBSCRIBE and its forms inside MULTI, as Redis 7.0.15 answers: EXEC's
/// array holds each one's confirmations in its place (one per channel, so
/// with two channels there is one element more than the length says, as in
/// Redis), the connection is subscribed afterwards, and in RESP3 the
/// confirmations are push frames inside the array.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_inside_multi_answers_as_redis() -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut cluster = Cluster::start(1).await?;
    cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let addr = cluster.resp_addr(0);
    let ok = Reply::Simple("OK".into());
    let queued = Reply::Simple("QUEUED".into());

    let mut conn = RawConn::connect(addr).await?;
    ensure!(conn.command(&[b"MULTI"]).await? == ok);
    ensure!(conn.command(&[b"SUBSCRIBE", b"a", b"b"]).await? == queued);
    ensure!(conn.command(&[b"SET", b"k", b"v"]).await? == queued);
    // `*2`, then three replies: a's and b's confirmations, then SET's.
    let exec = conn.command(&[b"EXEC"]).await?;
    ensure!(
        exec == Reply::Array(Some(vec![
            confirmation(b"subscribe", b"a", 1),
            confirmation(b"subscribe", b"b", 2)
        ])),
        "{exec:?}"
    );
    ensure!(conn.read_reply(Duration::from_secs(5)).await? == ok);
    // Subscribed now: RESP2's subscribed mode, and messages arrive.
    ensure!(conn.command(&[b"GET", b"k"]).await? == not_allowed("get"));
    let mut other = RawConn::connect(addr).await?;
    ensure!(integer(&mut other, &[b"PUBLISH", b"b", b"hi"]).await? == 1);
    let frame = conn.read_reply(Duration::from_secs(10)).await?;
    ensure!(frame == bulks(&[b"message", b"b", b"hi"]), "{frame:?}");
    ensure!(conn.command(&[b"RESET"]).await? == Reply::Simple("RESET".into()));

    // One pattern and a write: as many elements as commands.
    ensure!(conn.command(&[b"MULTI"]).await? == ok);
    ensure!(conn.command(&[b"PSUBSCRIBE", b"p*"]).await? == queued);
    ensure!(conn.command(&[b"SET", b"k", b"w"]).await? == queued);
    let exec = conn.command(&[b"EXEC"]).await?;
    ensure!(
        exec == Reply::Array(Some(vec![
            confirmation(b"psubscribe", b"p*", 1),
            ok.clone()
        ])),
        "{exec:?}"
    );
    ensure!(conn.command(&[b"RESET"]).await? == Reply::Simple("RESET".into()));

    // RESP3: `*1` holding a `>3` push.
    let mut raw = tokio::net::TcpStream::connect(addr).await?;
    raw.write_all(&dkv_integration::resp::encode(&[b"HELLO", b"3"]))
        .await?;
    for args in [&[&b"MULTI"[..]][..], &[b"SUBSCRIBE", b"c"], &[b"EXEC"]] {
        raw.write_all(&dkv_integration::resp::encode(args)).await?;
    }
    let want = b"+OK\r\n+QUEUED\r\n*1\r\n>3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n";
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !got.ends_with(want) {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, raw.read(&mut chunk))
            .await
            .with_context(|| format!("RESP3 EXEC: have {:?}", String::from_utf8_lossy(&got)))??;
        ensure!(n > 0, "closed: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&chunk[..n]);
    }
    Ok(())
}

/// A subscriber that drops and retakes a subscription with `UNSUBSCRIBE c`
/// and `SUBSCRIBE c` sent back to back (one write, as Celery's result
/// consumer does) is subscribed throughout, as on Redis: the two entries
/// are consecutive in the log, so no PUBLISH falls between them. Every
/// PUBLISH counts the subscriber, and it gets every message once, in
/// order. The subscriber is on a follower and the publisher on the leader
/// pipelines its PUBLISHes, so a gap between the two entries would be hit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelined_unsubscribe_and_resubscribe_misses_no_message() -> Result<()> {
    /// Resubscribes the subscriber sends.
    const ROUNDS: usize = 60;
    /// PUBLISHes sent per pipelined burst, and most bursts.
    const BURST: usize = 10;
    const MOST_BURSTS: usize = 2_000;
    let mut cluster = Cluster::start(3).await?;
    let leader = cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let follower = (leader + 1) % 3;
    let mut sub = subscriber(cluster.resp_addr(follower), &[b"SUBSCRIBE", b"c"], 1).await?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = {
        let stop = stop.clone();
        let addr = cluster.resp_addr(leader);
        tokio::spawn(async move {
            let mut conn = RawConn::connect(addr).await?;
            let mut counts = Vec::new();
            for _ in 0..MOST_BURSTS {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let mut burst = Vec::new();
                for i in 0..BURST {
                    let seq = (counts.len() + i).to_string();
                    burst.extend(dkv_integration::resp::encode(&[
                        b"PUBLISH",
                        b"c",
                        seq.as_bytes(),
                    ]));
                }
                conn.send(&burst).await?;
                for _ in 0..BURST {
                    match conn.read_reply(Duration::from_secs(10)).await? {
                        Reply::Integer(n) => counts.push(n),
                        other => bail!("PUBLISH: {other:?}"),
                    }
                }
            }
            Ok::<_, anyhow::Error>(counts)
        })
    };
    let mut got: Vec<usize> = Vec::new();
    let take = |got: &mut Vec<usize>, reply: &Reply| -> Result<bool> {
        if let Some((_, payload)) = message(reply) {
            got.push(payload.parse()?);
            return Ok(true);
        }
        Ok(false)
    };
    let retake = [
        dkv_integration::resp::encode(&[b"UNSUBSCRIBE", b"c"]),
        dkv_integration::resp::encode(&[b"SUBSCRIBE", b"c"]),
    ]
    .concat();
    for round in 0..ROUNDS {
        sub.send(&retake).await?;
        let mut confirms = Vec::new();
        while confirms.len() < 2 {
            let reply = sub.read_reply(Duration::from_secs(10)).await?;
            if !take(&mut got, &reply)? {
                confirms.push(reply);
            }
        }
        ensure!(
            confirms
                == [
                    confirmation(b"unsubscribe", b"c", 0),
                    confirmation(b"subscribe", b"c", 1)
                ],
            "round {round}: {confirms:?}"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let counts = publisher.await??;
    // Up to the last message published (bounded wait).
    let last = counts.len().checked_sub(1).context("nothing published")?;
    while got.last() != Some(&last) {
        let reply = sub.read_reply(Duration::from_secs(10)).await?;
        ensure!(take(&mut got, &reply)?, "not a message: {reply:?}");
    }
    let missed = counts.iter().filter(|&&n| n != 1).count();
    ensure!(
        missed == 0,
        "{missed} of {} PUBLISHes did not count the subscriber",
        counts.len()
    );
    let want: Vec<usize> = (0..counts.len()).collect();
    ensure!(got == want, "messages missing, repeated or out of order");
    eprintln!(
        "{ROUNDS} resubscribes during {} messages: none missed",
        counts.len()
    );
    Ok(())
}

// ---- delivery across a leader kill ------------------------------------------

/// What one publisher did: the payloads the cluster acknowledged and those
/// whose PUBLISH failed (outcome unknown to the client, never retried).
#[derive(Default)]
struct Published {
    acked: BTreeSet<String>,
    failed: BTreeSet<String>,
}

/// Publisher `p`: `count` PUBLISHes of `p{p}-{seq}` on channel `kc{p}`,
/// through node `p` and, when that connection fails, the next node that
/// answers. A failed PUBLISH is recorded and not sent again.
async fn kill_publisher(
    p: usize,
    count: usize,
    addrs: Vec<std::net::SocketAddr>,
    acked_total: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> Result<Published> {
    let channel = format!("kc{p}");
    let mut out = Published::default();
    let mut node = p;
    let mut conn = RawConn::connect(addrs[node]).await?;
    let deadline = tokio::time::Instant::now() + DELIVERY_TIMEOUT;
    for seq in 0..count {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "publisher {p} still at {seq} after {DELIVERY_TIMEOUT:?}"
        );
        let payload = format!("p{p}-{seq}");
        let sent = conn
            .send(&dkv_integration::resp::encode(&[
                b"PUBLISH",
                channel.as_bytes(),
                payload.as_bytes(),
            ]))
            .await;
        let reply = match sent {
            Ok(()) => conn.read_reply(Duration::from_secs(15)).await,
            Err(e) => Err(e),
        };
        match reply {
            Ok(Reply::Integer(_)) => {
                out.acked.insert(payload);
                acked_total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(Reply::Error(_)) => {
                out.failed.insert(payload);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(other) => bail!("PUBLISH {payload}: {other:?}"),
            Err(_) => {
                // The node is gone (or the reply is): another node, same
                // sequence, this payload counted as not acknowledged.
                out.failed.insert(payload);
                let mut next = None;
                for step in 1..=addrs.len() {
                    let candidate = (node + step) % addrs.len();
                    if let Ok(c) = RawConn::connect(addrs[candidate]).await {
                        next = Some((candidate, c));
                        break;
                    }
                }
                let (n, c) = next.context("no node accepts a connection")?;
                node = n;
                conn = c;
            }
        }
    }
    Ok(out)
}

/// Reads one subscriber until `done` says so, it has the three `end`
/// markers and the line is quiet, or until its connection closes; returns
/// (channel, payload) in arrival order and whether it was closed.
async fn collect(
    mut conn: RawConn,
    done: tokio::sync::watch::Receiver<bool>,
) -> Result<(Vec<(String, String)>, bool)> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + DELIVERY_TIMEOUT * 2;
    loop {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "subscriber never done"
        );
        match conn.read_reply(Duration::from_millis(500)).await {
            Ok(reply) => {
                got.push(message(&reply).with_context(|| format!("not a message: {reply:?}"))?)
            }
            Err(e) if format!("{e:#}").contains("no complete reply") => {
                if *done.borrow() && got.iter().filter(|(_, m)| m == "end").count() >= 3 {
                    return Ok((got, false));
                }
            }
            Err(_) => return Ok((got, true)),
        }
    }
}

/// 3 publishers on 3 nodes, a channel and a pattern subscriber on every
/// node, 10,000 PUBLISHes in all, and the leader SIGKILLed once half of
/// them are acknowledged. What the README promises, checked exactly:
/// - every subscriber on a surviving node gets every acknowledged message
///   exactly once; a PUBLISH that failed (its outcome unknown to the
///   client) may or may not arrive, and never twice;
/// - those subscribers all get the same messages in the same order (the
///   log's), so each channel's order is identical everywhere, and each
///   publisher's messages come in the order it sent them;
/// - subscribers on the killed node are disconnected; what they got before
///   is a prefix of that same order (nothing they saw is missing from the
///   others' stream, nothing out of order).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_kill_loses_no_acknowledged_message_and_duplicates_none() -> Result<()> {
    const TOTAL: usize = 10_000;
    let mut cluster = Cluster::start(3).await?;
    let leader = cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let addrs: Vec<_> = (0..3).map(|i| cluster.resp_addr(i)).collect();
    let (stop, done) = tokio::sync::watch::channel(false);
    let mut readers = Vec::new();
    for (node, addr) in addrs.iter().enumerate() {
        let channel = subscriber(*addr, &[b"SUBSCRIBE", b"kc0", b"kc1", b"kc2"], 3).await?;
        readers.push((node, tokio::spawn(collect(channel, done.clone()))));
        let pattern = subscriber(*addr, &[b"PSUBSCRIBE", b"kc*"], 1).await?;
        readers.push((node, tokio::spawn(collect(pattern, done.clone()))));
    }
    let acked_total = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut publishers = Vec::new();
    for p in 0..3 {
        let count = TOTAL / 3 + usize::from(p < TOTAL % 3);
        publishers.push(tokio::spawn(kill_publisher(
            p,
            count,
            addrs.clone(),
            acked_total.clone(),
        )));
    }
    let deadline = tokio::time::Instant::now() + DELIVERY_TIMEOUT;
    while acked_total.load(std::sync::atomic::Ordering::Relaxed) < TOTAL / 2 {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "half the messages not acknowledged in time"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cluster.kill9(leader)?;
    let mut acked = BTreeSet::new();
    let mut failed = BTreeSet::new();
    for publisher in publishers {
        let published = publisher.await??;
        acked.extend(published.acked);
        failed.extend(published.failed);
    }
    // Publishing is over; a last acknowledged PUBLISH on each channel
    // through a survivor marks the end of every stream.
    cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let survivor = (leader + 1) % 3;
    let mut last = RawConn::connect(addrs[survivor]).await?;
    for p in 0..3 {
        let channel = format!("kc{p}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            match last
                .command(&[b"PUBLISH", channel.as_bytes(), b"end"])
                .await?
            {
                Reply::Integer(_) => break,
                other => {
                    ensure!(
                        tokio::time::Instant::now() < deadline,
                        "end marker: {other:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    // Survivors' readers stop once they have the three markers and the
    // line is quiet.
    stop.send(true)?;
    let mut survivors: Vec<(usize, Vec<(String, String)>)> = Vec::new();
    let mut killed: Vec<Vec<(String, String)>> = Vec::new();
    for (i, (node, reader)) in readers.into_iter().enumerate() {
        let (got, closed) = reader.await??;
        if node == leader {
            ensure!(
                closed,
                "subscriber {i} on the killed node was not disconnected"
            );
            killed.push(got);
        } else {
            ensure!(!closed, "subscriber {i} on node {node} was disconnected");
            survivors.push((i, got));
        }
    }
    let (first_i, first) = survivors.first().context("no survivor")?.clone();
    for (i, got) in &survivors {
        let ends = got.iter().filter(|(_, m)| m == "end").count();
        ensure!(ends == 3, "subscriber {i}: {ends} end markers");
        ensure!(
            got == &first,
            "subscribers {i} and {first_i} got different streams"
        );
    }
    let payloads: Vec<&String> = first
        .iter()
        .map(|(_, m)| m)
        .filter(|m| *m != "end")
        .collect();
    let distinct: BTreeSet<&String> = payloads.iter().copied().collect();
    ensure!(distinct.len() == payloads.len(), "a message arrived twice");
    let missing: Vec<&String> = acked.iter().filter(|m| !distinct.contains(m)).collect();
    ensure!(
        missing.is_empty(),
        "acknowledged but not delivered: {missing:?}"
    );
    let stray: Vec<&&String> = distinct
        .iter()
        .filter(|m| !acked.contains(**m) && !failed.contains(**m))
        .collect();
    ensure!(stray.is_empty(), "delivered but never sent: {stray:?}");
    let mut last_seq: BTreeMap<&str, usize> = BTreeMap::new();
    for payload in &payloads {
        let (publisher, seq) = payload.split_once('-').context("payload")?;
        let seq: usize = seq.parse()?;
        if let Some(prev) = last_seq.insert(publisher, seq) {
            ensure!(prev < seq, "{publisher}: {seq} after {prev}");
        }
    }
    for (k, got) in killed.iter().enumerate() {
        ensure!(
            first.starts_with(got),
            "killed-node subscriber {k}'s {} messages are not a prefix of the others' stream",
            got.len()
        );
    }
    let failed_delivered = failed.iter().filter(|m| distinct.contains(m)).count();
    eprintln!(
        "leader kill: {} acknowledged, {} failed ({failed_delivered} of them delivered); \
         killed node's subscribers got {:?} before the kill",
        acked.len(),
        failed.len(),
        killed.iter().map(Vec::len).collect::<Vec<_>>()
    );
    cluster.shutdown();
    Ok(())
}
