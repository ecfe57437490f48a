//! Client limits against a real node: `client-output-buffer-limit` (a client
//! that pipelines big GETs and never reads is closed and the node's memory
//! stays bounded; one that reads is served), `client-query-buffer-limit`,
//! `timeout`, `maxmemory-clients`, and CONFIG GET/SET of all four with
//! Redis 7's texts.

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use dkv_integration::{rss_bytes, status_field, Cluster, RawConn, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a limit may take to act (the soft limit waits 10 s by itself).
const ACT_TIMEOUT: Duration = Duration::from_secs(30);
const MIB: usize = 1 << 20;

/// One field of `INFO <section>`.
async fn info_field(conn: &mut RawConn, section: &str, field: &str) -> Result<String> {
    let reply = conn
        .command(&[b"INFO", section.as_bytes()])
        .await
        .context("INFO")?;
    let Reply::Bulk(Some(text)) = reply else {
        bail!("INFO -> {reply:?}");
    };
    let text = String::from_utf8_lossy(&text).into_owned();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
        .with_context(|| format!("no {field} in INFO {section}:\n{text}"))
}

/// The value `CONFIG GET name` shows.
async fn config_get(conn: &mut RawConn, name: &str) -> Result<String> {
    let reply = conn
        .command(&[b"CONFIG", b"GET", name.as_bytes()])
        .await
        .context("CONFIG GET")?;
    match reply {
        Reply::Array(Some(items)) if items.len() == 2 => match &items[1] {
            Reply::Bulk(Some(value)) => Ok(String::from_utf8_lossy(value).into_owned()),
            other => bail!("CONFIG GET {name} value -> {other:?}"),
        },
        other => bail!("CONFIG GET {name} -> {other:?}"),
    }
}

/// `CONFIG SET name value`'s reply.
async fn config_set(conn: &mut RawConn, name: &str, value: &str) -> Result<Reply> {
    conn.command(&[b"CONFIG", b"SET", name.as_bytes(), value.as_bytes()])
        .await
        .context("CONFIG SET")
}

/// Stores a value of `bytes` bytes under `key`.
async fn set_big(conn: &mut RawConn, key: &str, bytes: usize) -> Result<()> {
    let value = vec![b'v'; bytes];
    let reply = conn
        .command(&[b"SET", key.as_bytes(), &value])
        .await
        .context("SET big value")?;
    ensure!(reply == Reply::Simple("OK".into()), "SET -> {reply:?}");
    Ok(())
}

/// Waits until `INFO stats` shows `field` at `want`, sampling the node's RSS
/// meanwhile; returns the largest RSS seen.
async fn wait_for_count(c: &Cluster, probe: &mut RawConn, field: &str, want: &str) -> Result<u64> {
    let pid = c.pid(0).context("node 0 has no pid")?;
    let mut most_rss = rss_bytes(pid)?;
    let deadline = tokio::time::Instant::now() + ACT_TIMEOUT;
    loop {
        most_rss = most_rss.max(rss_bytes(pid)?);
        let count = info_field(probe, "stats", field).await?;
        if count == want {
            return Ok(most_rss);
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "{field} still {count} after {ACT_TIMEOUT:?}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads what the server sent until it closes (bounded); returns the bytes.
async fn drain_until_closed(stream: &mut TcpStream) -> Result<usize> {
    let mut total = 0;
    let mut chunk = vec![0u8; 1 << 16];
    let deadline = tokio::time::Instant::now() + REPLY_TIMEOUT;
    loop {
        let read = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .context("connection still open")?;
        match read {
            Ok(0) => return Ok(total),
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(total),
            Err(e) => return Err(e).context("read"),
        }
    }
}

/// The node turns transparent huge pages off for itself, as Redis does
/// (`disable-thp yes`): with them on, the kernel zeroes 2 MiB each time the
/// allocator touches memory again, a third of a bulk load's CPU
/// (bench/PERFORMANCE.md). Linux reports the process's flag in `THP_enabled`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_runs_with_transparent_huge_pages_off() -> Result<()> {
    let c = Cluster::start(1).await?;
    let pid = c.pid(0).context("node 0 has no pid")?;
    let thp = status_field(pid, "THP_enabled")?;
    ensure!(thp == "0", "THP_enabled is {thp:?} for the node, not 0");
    Ok(())
}

/// Must-show: with `client-output-buffer-limit normal 64mb 32mb 10` (here
/// from the YAML config), a client that pipelines 300 GETs of a 1 MiB value
/// and reads nothing is disconnected, counted in INFO, and the node's RSS
/// grows by less than 256 MiB (300 MiB of replies were asked for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelining_client_that_never_reads_is_closed_and_memory_stays_bounded() -> Result<()> {
    let c = Cluster::start_with(1, |config| {
        config.limits_extra = "client_output_buffer_limit: \"normal 64mb 32mb 10\"".into();
    })
    .await?;
    let mut probe = RawConn::connect(c.resp_addr(0)).await?;
    ensure!(
        config_get(&mut probe, "client-output-buffer-limit").await?
            == "normal 67108864 33554432 10 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
    );
    set_big(&mut probe, "big", MIB).await?;
    let pid = c.pid(0).context("node 0 has no pid")?;
    let rss_before = rss_bytes(pid)?;

    let mut greedy = TcpStream::connect(c.resp_addr(0)).await?;
    let request = b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n".repeat(300);
    greedy.write_all(&request).await.context("send 300 GETs")?;
    let most_rss = wait_for_count(
        &c,
        &mut probe,
        "client_output_buffer_limit_disconnections",
        "1",
    )
    .await?;
    let received = drain_until_closed(&mut greedy).await?;
    ensure!(
        received < 300 * MIB,
        "got {received} bytes: the client was not cut off"
    );
    let growth = most_rss.saturating_sub(rss_before);
    eprintln!(
        "RSS before {rss_before}, most while serving {most_rss} (+{} MiB); client got {} MiB before the close",
        growth >> 20,
        received >> 20
    );
    ensure!(
        growth < 256 * MIB as u64,
        "RSS grew by {growth} bytes ({rss_before} -> {most_rss})"
    );
    // The node still serves.
    let pong = probe.command(&[b"PING"]).await?;
    ensure!(pong == Reply::Simple("PONG".into()), "PING -> {pong:?}");
    c.shutdown();
    Ok(())
}

/// The same 300 GETs from a client that reads as it goes (16 in flight, as
/// a pipelining client with a window does) are all answered, and nobody is
/// closed. (Redis closes a client that sends all 300 in one burst even if it
/// reads: all replies are produced before any is written.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelining_client_that_reads_is_served_in_full() -> Result<()> {
    const WINDOW: usize = 16;
    let c = Cluster::start(1).await?;
    let mut probe = RawConn::connect(c.resp_addr(0)).await?;
    let reply = config_set(
        &mut probe,
        "client-output-buffer-limit",
        "normal 64mb 32mb 10",
    )
    .await?;
    ensure!(
        reply == Reply::Simple("OK".into()),
        "CONFIG SET -> {reply:?}"
    );
    set_big(&mut probe, "big", MIB).await?;
    let mut reader = RawConn::connect(c.resp_addr(0)).await?;
    let window = b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n".repeat(WINDOW);
    for round in 0..300 / WINDOW + 1 {
        let count = WINDOW.min(300 - round * WINDOW);
        if count == 0 {
            break;
        }
        reader
            .send(&window[..window.len() / WINDOW * count])
            .await?;
        for _ in 0..count {
            let reply = reader.read_reply(REPLY_TIMEOUT).await?;
            let Reply::Bulk(Some(value)) = reply else {
                bail!("GET -> {reply:?}");
            };
            ensure!(value.len() == MIB, "GET returned {} bytes", value.len());
        }
    }
    ensure!(
        info_field(
            &mut probe,
            "stats",
            "client_output_buffer_limit_disconnections"
        )
        .await?
            == "0"
    );
    c.shutdown();
    Ok(())
}

/// `client-query-buffer-limit`: a request whose unparsed bytes pass it
/// closes the client (counted), as in Redis; others are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_buffer_past_its_limit_closes_the_client() -> Result<()> {
    let c = Cluster::start(1).await?;
    let mut probe = RawConn::connect(c.resp_addr(0)).await?;
    let reply = config_set(&mut probe, "client-query-buffer-limit", "1mb").await?;
    ensure!(
        reply == Reply::Simple("OK".into()),
        "CONFIG SET -> {reply:?}"
    );
    let mut big = TcpStream::connect(c.resp_addr(0)).await?;
    let mut request = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3000000\r\n".to_vec();
    request.extend(std::iter::repeat_n(b'x', 1_500_000));
    // The node may close while this is still being written.
    let _ = big.write_all(&request).await;
    wait_for_count(
        &c,
        &mut probe,
        "client_query_buffer_limit_disconnections",
        "1",
    )
    .await?;
    ensure!(drain_until_closed(&mut big).await? == 0, "no reply is sent");
    let pong = probe.command(&[b"PING"]).await?;
    ensure!(pong == Reply::Simple("PONG".into()), "PING -> {pong:?}");
    c.shutdown();
    Ok(())
}

/// `timeout`: an idle client is closed; one that keeps talking is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_clients_are_closed_after_timeout() -> Result<()> {
    let c = Cluster::start(1).await?;
    let mut probe = RawConn::connect(c.resp_addr(0)).await?;
    let reply = config_set(&mut probe, "timeout", "1").await?;
    ensure!(
        reply == Reply::Simple("OK".into()),
        "CONFIG SET -> {reply:?}"
    );
    let mut idle = RawConn::connect(c.resp_addr(0)).await?;
    let mut busy = RawConn::connect(c.resp_addr(0)).await?;
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let pong = busy.command(&[b"PING"]).await.context("busy client")?;
        ensure!(pong == Reply::Simple("PONG".into()), "PING -> {pong:?}");
    }
    idle.expect_closed(REPLY_TIMEOUT)
        .await
        .context("idle client")?;
    let reply = config_set(&mut busy, "timeout", "0").await?;
    ensure!(
        reply == Reply::Simple("OK".into()),
        "CONFIG SET -> {reply:?}"
    );
    c.shutdown();
    Ok(())
}

/// `maxmemory-clients`: when the clients' buffers together pass it, the
/// biggest client (here one that does not read its replies) is closed and
/// counted in INFO's `evicted_clients`; small clients stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_biggest_client_is_evicted_past_maxmemory_clients() -> Result<()> {
    let c = Cluster::start(1).await?;
    let mut setter = RawConn::connect(c.resp_addr(0)).await?;
    set_big(&mut setter, "big", MIB).await?;
    setter.close().await;
    let mut probe = RawConn::connect(c.resp_addr(0)).await?;
    let reply = config_set(&mut probe, "maxmemory-clients", "1mb").await?;
    ensure!(
        reply == Reply::Simple("OK".into()),
        "CONFIG SET -> {reply:?}"
    );
    let mut greedy = TcpStream::connect(c.resp_addr(0)).await?;
    greedy
        .write_all(&b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n".repeat(50))
        .await
        .context("send 50 GETs")?;
    wait_for_count(&c, &mut probe, "evicted_clients", "1").await?;
    let received = drain_until_closed(&mut greedy).await?;
    ensure!(received < 50 * MIB, "got {received} bytes before the close");
    let pong = probe.command(&[b"PING"]).await?;
    ensure!(pong == Reply::Simple("PONG".into()), "PING -> {pong:?}");
    c.shutdown();
    Ok(())
}

/// CONFIG GET shows Redis 7's defaults and formats; CONFIG SET takes Redis's
/// syntax and refuses bad values with Redis 7.0's texts (checked against
/// redis-server 7.0.15), changing nothing then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_get_and_set_of_client_limits_read_as_redis() -> Result<()> {
    let c = Cluster::start(1).await?;
    let mut conn = RawConn::connect(c.resp_addr(0)).await?;
    let defaults = [
        (
            "client-output-buffer-limit",
            "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
        ),
        ("client-query-buffer-limit", "1073741824"),
        ("timeout", "0"),
        ("maxmemory-clients", "0"),
    ];
    for (name, value) in defaults {
        ensure!(
            config_get(&mut conn, name).await? == value,
            "{name} default"
        );
    }
    let sets = [
        (
            "client-output-buffer-limit",
            "normal 64mb 32mb 10 replica 1gb 512mb 30",
            "normal 67108864 33554432 10 slave 1073741824 536870912 30 pubsub 33554432 8388608 60",
        ),
        ("client-query-buffer-limit", "2mb", "2097152"),
        ("timeout", "300", "300"),
        ("maxmemory-clients", "5%", "5%"),
        ("maxmemory-clients", "1gb", "1073741824"),
    ];
    for (name, value, shown) in sets {
        let reply = config_set(&mut conn, name, value).await?;
        ensure!(
            reply == Reply::Simple("OK".into()),
            "CONFIG SET {name} {value} -> {reply:?}"
        );
        ensure!(
            config_get(&mut conn, name).await? == shown,
            "{name} after SET {value}"
        );
    }
    let failed = |name: &str, why: &str| {
        format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {why}")
    };
    let errors = [
        (
            "client-output-buffer-limit",
            "normal 64mb 32mb",
            "Wrong number of arguments in buffer limit configuration.",
        ),
        (
            "client-output-buffer-limit",
            "foo 64mb 32mb 1",
            "Invalid client class specified in buffer limit configuration.",
        ),
        (
            "client-output-buffer-limit",
            "normal 64xb 32mb 1",
            "Error in hard, soft or soft_seconds setting in buffer limit configuration.",
        ),
        (
            "timeout",
            "-1",
            "argument must be between 0 and 2147483647 inclusive",
        ),
        (
            "client-query-buffer-limit",
            "1k",
            "argument must be between 1048576 and 9223372036854775807 inclusive",
        ),
    ];
    for (name, value, why) in errors {
        let reply = config_set(&mut conn, name, value).await?;
        ensure!(
            reply == Reply::Error(failed(name, why)),
            "CONFIG SET {name} {value} -> {reply:?}"
        );
    }
    ensure!(
        config_get(&mut conn, "timeout").await? == "300",
        "unchanged by a refused SET"
    );
    c.shutdown();
    Ok(())
}
