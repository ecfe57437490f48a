//! Client-side caching (`CLIENT TRACKING`, issue 15) on real servers.
//!
//! - A scripted differential test: the same sequence of tracking commands,
//!   reads and writes from several clients (RESP2 and RESP3, a RESP2
//!   redirection target in Pub/Sub mode) against a single dkv node and a
//!   real `redis-server`; every reply and every invalidation frame each
//!   client receives is compared byte for byte (client ids, which differ,
//!   are replaced by their names).
//! - On a 3-node cluster: a RESP3 client on a follower is invalidated by a
//!   write through the leader before the reply of its next read of the key;
//!   NOLOOP skips the client's own writes even when they are forwarded;
//!   an expiring key is invalidated when the leader expires it.
//! - redis-py's own client-side cache (RESP3, `cache_config`) against two
//!   nodes: `integration/compat/tracking_cache.py`.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use dkv_integration::external::{command_succeeds, run_bounded, tool_missing};
use dkv_integration::frames::FrameConn;
use dkv_integration::redis_server::start_redis;
use dkv_integration::{program_available, Cluster};

const WAIT: Duration = Duration::from_secs(10);

fn args(words: &[&str]) -> Vec<Vec<u8>> {
    words.iter().map(|w| w.as_bytes().to_vec()).collect()
}

/// True for a frame the server pushed rather than a reply: a RESP3 push,
/// or a message on the invalidation channel (RESP2 redirection).
fn is_push(frame: &[u8]) -> bool {
    frame.starts_with(b">")
        || frame.starts_with(b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n")
}

/// One step of the script: client `.0` sends `.1` (`$IDn`: client n's id;
/// `CLOSE`: the client disconnects).
type Step = (usize, &'static [&'static str]);

/// Clients: 0 and 1 RESP3 trackers, 2 a RESP2 redirection target, 3 a
/// RESP2 writer, 4 a RESP3 redirection target that disconnects.
const CLIENTS: usize = 5;

const SCRIPT: &[Step] = &[
    (0, &["HELLO", "3"]),
    (1, &["HELLO", "3"]),
    (4, &["HELLO", "3"]),
    // Errors, in Redis's order of checks.
    (0, &["CLIENT", "TRACKING"]),
    (0, &["CLIENT", "TRACKING", "maybe"]),
    (0, &["CLIENT", "TRACKING", "on", "bogus"]),
    (0, &["CLIENT", "TRACKING", "on", "REDIRECT"]),
    (0, &["CLIENT", "TRACKING", "on", "REDIRECT", "x"]),
    (0, &["CLIENT", "TRACKING", "on", "REDIRECT", "0"]),
    (0, &["CLIENT", "TRACKING", "on", "REDIRECT", "-5"]),
    (
        0,
        &[
            "CLIENT", "TRACKING", "on", "REDIRECT", "$ID2", "REDIRECT", "$ID2",
        ],
    ),
    (0, &["CLIENT", "TRACKING", "on", "PREFIX", "a"]),
    (0, &["CLIENT", "TRACKING", "on", "BCAST", "OPTIN"]),
    (0, &["CLIENT", "TRACKING", "on", "OPTIN", "OPTOUT"]),
    (
        0,
        &[
            "CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "ab", "PREFIX", "a",
        ],
    ),
    (0, &["CLIENT", "CACHING", "yes"]),
    (0, &["CLIENT", "CACHING"]),
    (0, &["CLIENT", "GETREDIR"]),
    (0, &["CLIENT", "TRACKINGINFO"]),
    (3, &["CLIENT", "TRACKINGINFO"]),
    // Default mode: reads are remembered, a write invalidates once.
    (0, &["CLIENT", "TRACKING", "on"]),
    (0, &["CLIENT", "GETREDIR"]),
    (0, &["CLIENT", "TRACKINGINFO"]),
    (0, &["CLIENT", "TRACKING", "on", "BCAST"]),
    (0, &["CLIENT", "CACHING", "yes"]),
    (0, &["CLIENT", "CACHING", "no"]),
    (3, &["SET", "a", "1"]),
    (0, &["GET", "a"]),
    (0, &["MGET", "b", "c"]),
    (3, &["SET", "a", "2"]),
    (3, &["SET", "a", "3"]),
    (3, &["MSET", "b", "1", "c", "2", "d", "3"]),
    (0, &["GET", "a"]),
    (3, &["DEL", "a"]),
    (0, &["STRLEN", "b"]),
    (3, &["APPEND", "b", "x"]),
    (0, &["EXISTS", "c"]),
    (3, &["EXPIRE", "c", "1000"]),
    (0, &["GET", "d"]),
    (3, &["INCR", "d"]),
    // The tracker writes its own key: the invalidation follows its reply.
    (0, &["GET", "e"]),
    (0, &["SET", "e", "mine"]),
    // FLUSHALL: a null to every tracking client.
    (0, &["GET", "f"]),
    (3, &["FLUSHALL"]),
    (3, &["FLUSHDB"]),
    // NOLOOP: not the client's own writes.
    (0, &["CLIENT", "TRACKING", "off"]),
    (0, &["CLIENT", "TRACKINGINFO"]),
    (0, &["CLIENT", "TRACKING", "on", "NOLOOP"]),
    (0, &["GET", "g"]),
    (0, &["SET", "g", "1"]),
    (0, &["GET", "g"]),
    (3, &["SET", "g", "2"]),
    (0, &["CLIENT", "TRACKINGINFO"]),
    (0, &["CLIENT", "TRACKING", "off"]),
    // OPTIN: only reads right after CLIENT CACHING yes.
    (1, &["CLIENT", "TRACKING", "on", "OPTIN"]),
    (1, &["CLIENT", "TRACKING", "on", "OPTOUT"]),
    (1, &["GET", "h"]),
    (1, &["CLIENT", "CACHING", "yes"]),
    (1, &["CLIENT", "TRACKINGINFO"]),
    (1, &["CLIENT", "CACHING", "yes"]),
    (1, &["GET", "i"]),
    (1, &["GET", "j"]),
    (1, &["CLIENT", "TRACKINGINFO"]),
    (3, &["MSET", "h", "1", "i", "1", "j", "1"]),
    (1, &["CLIENT", "CACHING", "no"]),
    (1, &["CLIENT", "TRACKING", "off"]),
    // OPTOUT: every read but those right after CLIENT CACHING no.
    (1, &["CLIENT", "TRACKING", "on", "OPTOUT"]),
    (1, &["CLIENT", "CACHING", "no"]),
    (1, &["GET", "h"]),
    (1, &["GET", "i"]),
    (3, &["MSET", "h", "2", "i", "2"]),
    (1, &["CLIENT", "TRACKING", "off"]),
    // BCAST with prefixes: matching writes, grouped per prefix.
    (
        1,
        &[
            "CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "user:", "PREFIX", "item:",
        ],
    ),
    (1, &["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "use"]),
    (1, &["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "x:"]),
    (1, &["CLIENT", "TRACKINGINFO"]),
    (1, &["CLIENT", "TRACKING", "on"]),
    (3, &["SET", "user:1", "a"]),
    (3, &["MSET", "item:2", "b", "other", "c", "x:9", "d"]),
    (3, &["DEL", "user:1", "user:2"]),
    (1, &["CLIENT", "TRACKING", "off"]),
    // BCAST without prefixes: every key.
    (1, &["CLIENT", "TRACKING", "on", "BCAST", "NOLOOP"]),
    (1, &["SET", "own", "1"]),
    (3, &["SET", "theirs", "1"]),
    (1, &["CLIENT", "TRACKING", "off"]),
    // REDIRECT to a RESP2 client subscribed to __redis__:invalidate.
    (2, &["SUBSCRIBE", "__redis__:invalidate"]),
    (0, &["CLIENT", "TRACKING", "on", "REDIRECT", "$ID2"]),
    (0, &["CLIENT", "GETREDIR"]),
    (0, &["CLIENT", "TRACKINGINFO"]),
    (0, &["GET", "k"]),
    (3, &["SET", "k", "1"]),
    (3, &["FLUSHALL"]),
    (0, &["CLIENT", "TRACKING", "off"]),
    // REDIRECT to a RESP3 client, which then leaves: tracking-redir-broken.
    (1, &["CLIENT", "TRACKING", "on", "REDIRECT", "$ID4"]),
    (1, &["GET", "m"]),
    (3, &["SET", "m", "1"]),
    (1, &["GET", "m"]),
    (4, &["CLOSE"]),
    (3, &["SET", "m", "2"]),
    (1, &["CLIENT", "TRACKINGINFO"]),
    (1, &["CLIENT", "GETREDIR"]),
    (1, &["RESET"]),
    (1, &["CLIENT", "TRACKINGINFO"]),
];

/// Runs the script on the server at `addr`; returns one line per frame.
async fn run_script(addr: SocketAddr) -> Result<Vec<String>> {
    let mut conns = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..CLIENTS {
        let mut conn = FrameConn::connect(addr).await?;
        let id = conn.call(&args(&["CLIENT", "ID"])).await?;
        let id = String::from_utf8_lossy(&id[1..id.len() - 2]).into_owned();
        conns.push(Some(conn));
        ids.push(id);
    }
    let mut log = Vec::new();
    // Replaces client ids with their names in the frames that hold one
    // (GETREDIR, TRACKINGINFO, tracking-redir-broken); HELLO's reply names
    // the server, which differs.
    let named = |frame: &[u8], ids: &[String], words: &[&str]| {
        let mut text = String::from_utf8_lossy(frame).into_owned();
        if words.first() == Some(&"HELLO") && !is_push(frame) {
            return "HELLO reply".to_string();
        }
        let has_id = text.contains("tracking-redir-broken")
            || words
                .get(1)
                .is_some_and(|w| *w == "GETREDIR" || *w == "TRACKINGINFO");
        if !has_id {
            return text;
        }
        for (i, id) in ids.iter().enumerate() {
            text = text.replace(&format!(":{id}\r\n"), &format!(":ID{i}\r\n"));
        }
        text
    };
    for (n, (client, words)) in SCRIPT.iter().enumerate() {
        if words == &["CLOSE"] {
            conns[*client] = None;
            // Both servers notice a close asynchronously: wait (bounded)
            // until the client is gone from CLIENT LIST.
            let mut admin = FrameConn::connect(addr).await?;
            let mut left = false;
            for _ in 0..200 {
                let list = admin
                    .call(&args(&["CLIENT", "LIST", "ID", &ids[*client]]))
                    .await?;
                if list == b"$0\r\n\r\n" {
                    left = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            ensure!(left, "client {client} still listed");
            log.push(format!("{n} {client} CLOSE"));
            continue;
        }
        let command: Vec<Vec<u8>> = words
            .iter()
            .map(|w| match w.strip_prefix("$ID") {
                Some(i) => ids[i.parse::<usize>().unwrap_or(0)].clone().into_bytes(),
                None => w.as_bytes().to_vec(),
            })
            .collect();
        let conn = conns[*client].as_mut().context("closed client")?;
        conn.send(&command).await?;
        loop {
            let frame = conn
                .frame(WAIT)
                .await
                .with_context(|| format!("step {n}"))?;
            let push = is_push(&frame);
            log.push(format!(
                "{n} {client} {} {:?}",
                if push { "push" } else { "reply" },
                named(&frame, &ids, words)
            ));
            if !push {
                break;
            }
        }
        // Every client's pushes so far: they precede its PING's reply. Not
        // after CLIENT CACHING from that client: a PING would use it up.
        let caching = words
            .get(1)
            .is_some_and(|w| w.eq_ignore_ascii_case("caching"));
        for (other, conn) in conns.iter_mut().enumerate() {
            let Some(conn) = conn else { continue };
            if caching && other == *client {
                continue;
            }
            conn.send(&args(&["PING"])).await?;
            loop {
                let frame = conn.frame(WAIT).await?;
                if !is_push(&frame) {
                    break;
                }
                log.push(format!("{n} {other} push {:?}", named(&frame, &ids, &[])));
            }
        }
    }
    Ok(log)
}

/// The scripted sequence gives the same replies and frames on dkv (one
/// node) as on Redis 7.0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracking_replies_and_frames_match_redis() -> Result<()> {
    if !program_available("redis-server", "--version") {
        return tool_missing("redis-server is not installed");
    }
    let (redis, _) = start_redis().await?;
    let mut cluster = Cluster::start(1).await?;
    cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let expected = run_script(redis.addr).await.context("redis")?;
    let got = run_script(cluster.resp_addr(0)).await.context("dkv")?;
    let pushes = expected.iter().filter(|l| l.contains(" push ")).count();
    println!(
        "{} frames compared, {pushes} of them pushes",
        expected.len()
    );
    let mut diffs = Vec::new();
    for i in 0..expected.len().max(got.len()) {
        let (e, g) = (expected.get(i), got.get(i));
        if e != g {
            diffs.push(format!("redis: {e:?}\n  dkv: {g:?}"));
        }
    }
    if !diffs.is_empty() {
        bail!(
            "{} lines differ; first:\n{}",
            diffs.len(),
            diffs.iter().take(5).cloned().collect::<Vec<_>>().join("\n")
        );
    }
    cluster.shutdown();
    Ok(())
}

/// A RESP3 connection that has sent `HELLO 3` and `CLIENT TRACKING on ...`.
async fn tracker(addr: SocketAddr, options: &[&str]) -> Result<FrameConn> {
    let mut conn = FrameConn::connect(addr).await?;
    let hello = conn.call(&args(&["HELLO", "3"])).await?;
    ensure!(hello.starts_with(b"%"), "HELLO 3: {hello:?}");
    let mut on = vec!["CLIENT", "TRACKING", "on"];
    on.extend_from_slice(options);
    let ok = conn.call(&args(&on)).await?;
    ensure!(ok == b"+OK\r\n", "{on:?}: {ok:?}");
    Ok(conn)
}

fn invalidate(key: &str) -> Vec<u8> {
    format!(
        ">2\r\n$10\r\ninvalidate\r\n*1\r\n${}\r\n{key}\r\n",
        key.len()
    )
    .into_bytes()
}

/// A write acknowledged by the leader invalidates the key for a tracking
/// client on a follower, and the invalidation arrives before the reply of
/// that client's next read of the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_the_leader_invalidates_a_follower_client_before_its_next_read(
) -> Result<()> {
    let mut cluster = Cluster::start(3).await?;
    let leader = cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let follower = (leader + 1) % 3;
    let mut writer = FrameConn::connect(cluster.resp_addr(leader)).await?;
    ensure!(writer.call(&args(&["SET", "k", "v1"])).await? == b"+OK\r\n");
    let mut reader = tracker(cluster.resp_addr(follower), &[]).await?;
    let mut reader_noloop = tracker(cluster.resp_addr(follower), &["NOLOOP"]).await?;
    for round in 0..20 {
        let value = format!("v{}", round + 2);
        let old = reader.call(&args(&["GET", "k"])).await?;
        ensure!(old.starts_with(b"$"), "GET: {old:?}");
        ensure!(writer.call(&args(&["SET", "k", &value])).await? == b"+OK\r\n");
        // The acknowledged write is in the follower's next read: its
        // invalidation comes first.
        reader.send(&args(&["GET", "k"])).await?;
        let first = reader.frame(WAIT).await?;
        ensure!(first == invalidate("k"), "round {round}: {first:?}");
        let reply = reader.frame(WAIT).await?;
        let want = format!("${}\r\n{value}\r\n", value.len()).into_bytes();
        ensure!(reply == want, "round {round}: {reply:?}");
        // Forgotten once invalidated: the next write sends nothing until
        // the key is read again.
        reader.call(&args(&["GET", "k"])).await?;
    }
    // NOLOOP on a follower: its own (forwarded) write sends nothing, a
    // write by another client does.
    reader_noloop.call(&args(&["GET", "n"])).await?;
    ensure!(reader_noloop.call(&args(&["SET", "n", "own"])).await? == b"+OK\r\n");
    reader_noloop.call(&args(&["GET", "n"])).await?;
    ensure!(writer.call(&args(&["SET", "n", "theirs"])).await? == b"+OK\r\n");
    reader_noloop.send(&args(&["GET", "n"])).await?;
    let first = reader_noloop.frame(WAIT).await?;
    ensure!(first == invalidate("n"), "NOLOOP: {first:?}");
    ensure!(reader_noloop.frame(WAIT).await? == b"$6\r\ntheirs\r\n");
    // A key the leader expires is invalidated (bounded wait: active expiry).
    ensure!(writer.call(&args(&["SET", "t", "x", "PX", "100"])).await? == b"+OK\r\n");
    reader.call(&args(&["GET", "t"])).await?;
    let pushed = reader
        .frame(WAIT)
        .await
        .context("no invalidation for the expired key")?;
    ensure!(pushed == invalidate("t"), "expiry: {pushed:?}");
    // FLUSHALL through the leader: a null invalidation on the follower.
    ensure!(writer.call(&args(&["FLUSHALL"])).await? == b"+OK\r\n");
    reader.send(&args(&["GET", "k"])).await?;
    ensure!(reader.frame(WAIT).await? == b">2\r\n$10\r\ninvalidate\r\n_\r\n");
    ensure!(reader.frame(WAIT).await? == b"_\r\n");
    cluster.shutdown();
    Ok(())
}

/// redis-py's client-side cache (RESP3, `cache_config`) on one node, writes
/// through another: the cached value is dropped and the next GET reads the
/// new one (`integration/compat/tracking_cache.py`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_client_side_cache_sees_writes_through_another_node() -> Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("compat");
    let python = dir.join("venv/bin/python3");
    if !command_succeeds(&python, &["-c", "from redis.cache import CacheConfig"]) {
        return tool_missing(&format!(
            "no redis-py >= 5.1 in {} (python3 -m venv integration/compat/venv && integration/compat/venv/bin/pip install 'redis>=5.1')",
            python.display()
        ));
    }
    let mut cluster = Cluster::start(3).await?;
    let leader = cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let follower = (leader + 1) % 3;
    let (a, b) = (cluster.resp_addr(follower), cluster.resp_addr(leader));
    let mut command = Command::new(&python);
    command
        .arg(dir.join("tracking_cache.py"))
        .args([a.port().to_string(), b.port().to_string()]);
    let text = run_bounded(command, "tracking_cache.py", Duration::from_secs(60)).await?;
    println!("{text}");
    ensure!(
        text.contains("all checks passed"),
        "tracking_cache.py:\n{text}"
    );
    cluster.shutdown();
    Ok(())
}
