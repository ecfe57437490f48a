//! Hostile and broken input: malformed RESP, absurd nesting and lengths, unknown
//! commands, wrong arity, clients that vanish mid-request, invalid config files,
//! peers of another cluster and broken Raft message streams. Each case then checks
//! the node still serves another client.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use dkv_integration::{
    http, rss_bytes, run_until_exit, server_binary, Cluster, ClusterOptions, NodeConfig, RawConn,
    Reply,
};

const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// A server given an invalid config must exit within this.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The node answers a fresh client: PING, then SET and GET of a fresh key.
async fn assert_serves(c: &Cluster, i: usize) -> Result<()> {
    let mut conn = RawConn::connect(c.resp_addr(i)).await?;
    let pong = conn.command(&[b"PING"]).await.context("PING")?;
    ensure!(pong == Reply::Simple("PONG".into()), "PING -> {pong:?}");
    let mut client = c.client(i).await?;
    let key = format!("alive-{}", std::process::id());
    let ok: String = redis::cmd("SET")
        .arg(&key)
        .arg("yes")
        .query_async(&mut client)
        .await
        .context("SET on a fresh connection")?;
    ensure!(ok == "OK", "SET -> {ok:?}");
    let v: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut client)
        .await
        .context("GET on a fresh connection")?;
    ensure!(v.as_deref() == Some("yes"), "GET -> {v:?}");
    Ok(())
}

fn error_text(reply: &Reply) -> Result<&str> {
    match reply {
        Reply::Error(e) => Ok(e),
        other => bail!("expected an error reply, got {other:?}"),
    }
}

/// `*2\r\n$3\r\nGET\r\n:1\r\n` (an integer where a bulk string must be) gets
/// `-ERR Protocol error...` and the connection is closed, as in Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_resp_gets_protocol_error_and_close() -> Result<()> {
    let c = Cluster::start(1).await?;
    let mut conn = RawConn::connect(c.resp_addr(0)).await?;
    conn.send(b"*2\r\n$3\r\nGET\r\n:1\r\n").await?;
    let reply = conn.read_reply(REPLY_TIMEOUT).await?;
    let text = error_text(&reply)?;
    ensure!(
        text.starts_with("ERR Protocol error"),
        "malformed frame -> -{text}, want -ERR Protocol error..."
    );
    conn.expect_closed(REPLY_TIMEOUT)
        .await
        .context("connection after a protocol error")?;
    assert_serves(&c, 0).await?;
    c.shutdown();
    Ok(())
}

/// 100,000 nested arrays (`*1\r\n` x 100,000) get an error reply (Redis: `-ERR Protocol
/// error: expected '$', got '*'`), not a stack overflow or a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_arrays_get_an_error() -> Result<()> {
    let c = Cluster::start(1).await?;
    let mut conn = RawConn::connect(c.resp_addr(0)).await?;
    let request = b"*1\r\n".repeat(100_000);
    // The server may close while we are still writing; the reply is what counts.
    let sent = conn.send(&request).await;
    let reply = conn
        .read_reply(REPLY_TIMEOUT)
        .await
        .with_context(|| format!("reply to 100,000 nested arrays (send result: {sent:?})"))?;
    let text = error_text(&reply)?;
    ensure!(text.starts_with("ERR"), "nested arrays -> -{text}");
    assert_serves(&c, 0).await?;
    c.shutdown();
    Ok(())
}

/// A bulk length of 4 GiB, one just over `max_bulk_len_bytes`, and a negative one each get
/// `-ERR Protocol error: invalid bulk length` and a closed connection, and the server
/// allocates nothing for them (RSS grows by less than 64 MiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_bulk_length_is_refused_without_allocating() -> Result<()> {
    let c = Cluster::start(1).await?;
    let pid = c.pid(0).context("node 0 has no pid")?;
    let rss_before = rss_bytes(pid)?;
    let over_limit = format!("${}\r\n", c.config(0).max_bulk_len_bytes + 1);
    let cases: [&[u8]; 3] = [b"$4294967296\r\n", over_limit.as_bytes(), b"$-5\r\n"];
    for bulk_header in cases {
        let shown = String::from_utf8_lossy(bulk_header).trim_end().to_string();
        let mut conn = RawConn::connect(c.resp_addr(0)).await?;
        let mut request = b"*2\r\n$3\r\nSET\r\n".to_vec();
        request.extend_from_slice(bulk_header);
        conn.send(&request).await?;
        let reply = conn
            .read_reply(REPLY_TIMEOUT)
            .await
            .with_context(|| format!("reply to bulk length {shown}"))?;
        let text = error_text(&reply)?;
        ensure!(
            text == "ERR Protocol error: invalid bulk length",
            "bulk length {shown} -> -{text}, want -ERR Protocol error: invalid bulk length"
        );
        conn.expect_closed(REPLY_TIMEOUT)
            .await
            .with_context(|| format!("connection after bulk length {shown}"))?;
    }
    assert_serves(&c, 0).await?;
    let rss_after = rss_bytes(pid)?;
    let growth = rss_after.saturating_sub(rss_before);
    ensure!(
        growth < 64 * 1024 * 1024,
        "RSS grew by {growth} bytes ({rss_before} -> {rss_after}) after huge bulk lengths"
    );
    c.shutdown();
    Ok(())
}

/// An unknown command gets Redis's exact text and the connection stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_command_gets_redis_text() -> Result<()> {
    let c = Cluster::start(1).await?;
    let mut conn = RawConn::connect(c.resp_addr(0)).await?;
    let reply = conn.command(&[b"foo", b"bar"]).await?;
    ensure!(
        reply == Reply::Error("ERR unknown command 'foo', with args beginning with: 'bar' ".into()),
        "foo bar -> {reply:?}"
    );
    let reply = conn.command(&[b"PING"]).await?;
    ensure!(
        reply == Reply::Simple("PONG".into()),
        "PING after unknown command -> {reply:?}"
    );
    assert_serves(&c, 0).await?;
    c.shutdown();
    Ok(())
}

/// Wrong arity gets `-ERR wrong number of arguments for 'get' command` and the same
/// connection keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_arity_keeps_connection_usable() -> Result<()> {
    let c = Cluster::start(1).await?;
    let mut conn = RawConn::connect(c.resp_addr(0)).await?;
    let reply = conn.command(&[b"GET"]).await?;
    ensure!(
        reply == Reply::Error("ERR wrong number of arguments for 'get' command".into()),
        "GET with no key -> {reply:?}"
    );
    let reply = conn.command(&[b"GET", b"a", b"b"]).await?;
    ensure!(
        reply == Reply::Error("ERR wrong number of arguments for 'get' command".into()),
        "GET a b -> {reply:?}"
    );
    let reply = conn.command(&[b"SET", b"arity", b"ok"]).await?;
    ensure!(
        reply == Reply::Simple("OK".into()),
        "SET after arity errors -> {reply:?}"
    );
    let reply = conn.command(&[b"GET", b"arity"]).await?;
    ensure!(
        reply == Reply::Bulk(Some(b"ok".to_vec())),
        "GET after arity errors -> {reply:?}"
    );
    assert_serves(&c, 0).await?;
    c.shutdown();
    Ok(())
}

/// Clients that send part of a request and close (mid-header, mid-bulk, after a
/// complete command plus half of the next) do not disturb the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnecting_mid_request_does_not_hurt_the_server() -> Result<()> {
    let c = Cluster::start(1).await?;
    let halves: [&[u8]; 4] = [
        b"*3\r\n$3\r\nSET\r\n$1\r\nk",
        b"*3\r\n$3\r\nSET\r\n$5\r\nhalf-\r\n$1000\r\nabc",
        b"*2\r\n$3\r\nGE",
        b"*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n",
    ];
    for half in halves {
        let mut conn = RawConn::connect(c.resp_addr(0)).await?;
        conn.send(half).await?;
        conn.close().await;
    }
    // And one that vanishes without even a FIN being read: drop with data unread.
    {
        let mut conn = RawConn::connect(c.resp_addr(0)).await?;
        conn.send(b"*2\r\n$3\r\nGET\r\n$100\r\n").await?;
        drop(conn);
    }
    assert_serves(&c, 0).await?;
    c.shutdown();
    Ok(())
}

/// The peer routes (see `transport`): a sender naming another cluster, or a
/// node that is not a member, is refused with `403` before its body is read;
/// a Raft message stream with a frame over the limit, a frame that does not
/// decode, messages sent in another node's name or a frame cut short is ended
/// with a status and text that say which. The node keeps serving throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_of_another_cluster_and_broken_message_streams_are_refused() -> Result<()> {
    // Plain peer RPC: this test plays a member with hand-made requests (over
    // mTLS, a request without the member's certificate never gets this far;
    // see hostile.rs).
    let opts = ClusterOptions {
        insecure_peer_rpc: true,
        ..ClusterOptions::default()
    };
    let mut c = Cluster::start_opts(3, opts, |_| {}).await?;
    c.wait_for_leader(Duration::from_secs(10)).await?;
    let http = c.http_addr(0); // node id 1; its peers are 2 and 3
    let peer = |cluster, from| [("x-dkv-cluster", cluster), ("x-dkv-from", from)];
    for path in [
        "/raft/stream",
        "/raft/msg",
        "/raft/forward",
        "/raft/forward-batches",
        "/raft/forward-stream",
        "/raft/read-index",
        "/raft/snapshot",
    ] {
        let r = http::post(http, path, &peer("other", "2"), b"\x01\x00", REPLY_TIMEOUT).await?;
        ensure!(
            r.status == 403
                && r.text().contains("peer request names another cluster")
                && !r.text().contains("test"),
            "{path} from another cluster: {} {:?}",
            r.status,
            r.text()
        );
        let r = http::post(http, path, &peer("test", "7"), b"", REPLY_TIMEOUT).await?;
        ensure!(
            r.status == 403
                && r.text()
                    .contains("peer request from a sender that is not a member"),
            "{path} from node 7: {} {:?}",
            r.status,
            r.text()
        );
    }
    // Frames: a little-endian u32 length, then postcard envelopes back to back.
    // `03 01 01 00 00` is one envelope from 3 to 1: RequestVoteResponse,
    // term 0, not granted.
    let cases: [(&[u8], u16, &str); 5] = [
        (
            &u32::MAX.to_le_bytes(),
            413,
            "frame of 4294967295 bytes is over the limit",
        ),
        (b"\x03\x00\x00\x00\xff\xff\xff", 400, "bad message batch"),
        (
            b"\x05\x00\x00\x00\x03\x01\x01\x00\x00",
            400,
            "message from 3 to 1 sent by node 2 to node 1",
        ),
        (
            b"\x06\x00\x00\x00\x01\x02",
            400,
            "stream ended inside a frame",
        ),
        (b"", 204, ""),
    ];
    for (body, status, text) in cases {
        let r = http::post(
            http,
            "/raft/stream",
            &peer("test", "2"),
            body,
            REPLY_TIMEOUT,
        )
        .await?;
        ensure!(
            r.status == status && r.text().contains(text),
            "stream {body:02x?}: expected {status} {text:?}, got {} {:?}",
            r.status,
            r.text()
        );
    }
    assert_serves(&c, 0).await?;
    c.shutdown();
    Ok(())
}

/// Two distinct free loopback addresses.
fn two_addrs() -> Result<(SocketAddr, SocketAddr)> {
    let a = TcpListener::bind("127.0.0.1:0")?;
    let b = TcpListener::bind("127.0.0.1:0")?;
    Ok((a.local_addr()?, b.local_addr()?))
}

fn base_config(dir: &std::path::Path) -> Result<NodeConfig> {
    let (resp_addr, http_addr) = two_addrs()?;
    Ok(NodeConfig {
        id: 1,
        cluster_id: "test".into(),
        resp_addr,
        http_addr,
        data_dir: dir.join("data"),
        peers: Vec::new(),
        tick_ms: 10,
        request_timeout_ms: 5000,
        max_bulk_len_bytes: 512 * 1024 * 1024,
        extra_yaml: String::new(),
        raft_extra: String::new(),
        metrics_addr: None,
        peer_tls: None,
        admin_token_path: None,
        limits_extra: String::new(),
        tls_resp_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        client_tls: None,
    })
}

/// Run the server on `config`, expect a non-zero exit whose stderr names the file and
/// every string in `must_name`.
async fn expect_config_rejected(
    dir: &std::path::Path,
    config: &std::path::Path,
    must_name: &[&str],
) -> Result<()> {
    let bin = server_binary()?;
    let report = run_until_exit(&bin, config, dir, EXIT_TIMEOUT).await?;
    ensure!(
        !report.status.success(),
        "server accepted invalid config {} (exit {}); stderr:\n{}",
        config.display(),
        report.status,
        report.stderr
    );
    let file = config.to_string_lossy();
    ensure!(
        report.stderr.contains(file.as_ref()),
        "stderr does not name the file {file}:\n{}",
        report.stderr
    );
    for name in must_name {
        ensure!(
            report.stderr.contains(name),
            "stderr does not name {name:?}:\n{}",
            report.stderr
        );
    }
    Ok(())
}

/// An unknown top-level key is refused, naming the file and the key.
#[tokio::test]
async fn config_with_unknown_key_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = base_config(dir.path())?;
    config.extra_yaml = "bogus_setting: 1\n".into();
    let path = dir.path().join("unknown-key.yaml");
    std::fs::write(&path, config.to_yaml())?;
    expect_config_rejected(dir.path(), &path, &["bogus_setting"]).await
}

/// Two peers with the same id are refused, naming the file and `peers`.
#[tokio::test]
async fn config_with_duplicate_peer_id_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = base_config(dir.path())?;
    let (r2, h2) = two_addrs()?;
    let (r3, h3) = two_addrs()?;
    config.peers = vec![(2, r2, h2), (2, r3, h3)];
    let path = dir.path().join("duplicate-peer.yaml");
    std::fs::write(&path, config.to_yaml())?;
    expect_config_rejected(dir.path(), &path, &["peers"]).await
}

/// A config file that does not exist is refused, naming the file.
#[tokio::test]
async fn missing_config_file_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("no-such-config.yaml");
    expect_config_rejected(dir.path(), &path, &[]).await
}

/// A reference `redis-server` on a free port, killed on drop.
struct RedisServer {
    child: Child,
    addr: SocketAddr,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_reference_redis() -> Result<Option<RedisServer>> {
    let Some(bin) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("redis-server"))
            .find(|p| p.is_file())
    }) else {
        return Ok(None);
    };
    let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let child = Command::new(bin)
        .args(["--port", &addr.port().to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("spawn redis-server")?;
    let server = RedisServer { child, addr };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(mut conn) = RawConn::connect(addr).await {
            if conn.command(&[b"PING"]).await.ok() == Some(Reply::Simple("PONG".into())) {
                return Ok(Some(server));
            }
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "reference redis-server on {addr} did not answer PING within 5s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Error replies for bad commands are byte-for-byte those of a real `redis-server`
/// (skipped, with a note, if none is installed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_texts_match_real_redis() -> Result<()> {
    let Some(redis) = start_reference_redis().await? else {
        eprintln!("redis-server not installed; skipping the reference comparison");
        return Ok(());
    };
    let c = Cluster::start(1).await?;
    let commands: [&[&[u8]]; 7] = [
        &[b"foo", b"bar"],
        &[b"foo"],
        &[b"foo", b"bar", b"baz"],
        &[b"GET"],
        &[b"SET", b"k"],
        &[b"DEL"],
        &[b"EXISTS"],
    ];
    let mut ours = RawConn::connect(c.resp_addr(0)).await?;
    let mut theirs = RawConn::connect(redis.addr).await?;
    let mut diffs = Vec::new();
    for args in commands {
        let shown: Vec<String> = args
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let want = theirs.command(args).await?;
        let got = ours.command(args).await?;
        if got != want {
            diffs.push(format!("{shown:?}: dkv {got:?}, redis {want:?}"));
        }
    }
    // Protocol errors close the connection: one fresh connection per case.
    let frames: [&[u8]; 3] = [
        b"*2\r\n$3\r\nGET\r\n:1\r\n",
        b"*2\r\n$3\r\nSET\r\n$4294967296\r\n",
        b"*2\r\n$3\r\nSET\r\n$-5\r\n",
    ];
    for frame in frames {
        let mut ours = RawConn::connect(c.resp_addr(0)).await?;
        let mut theirs = RawConn::connect(redis.addr).await?;
        ours.send(frame).await?;
        theirs.send(frame).await?;
        let want = theirs.read_reply(REPLY_TIMEOUT).await?;
        let got = ours.read_reply(REPLY_TIMEOUT).await?;
        if got != want {
            diffs.push(format!(
                "{:?}: dkv {got:?}, redis {want:?}",
                String::from_utf8_lossy(frame)
            ));
        }
        let closed = ours.expect_closed(REPLY_TIMEOUT).await;
        if let Err(closed) = closed {
            diffs.push(format!(
                "{:?}: redis closes the connection, dkv: {closed:#}",
                String::from_utf8_lossy(frame)
            ));
        }
    }
    ensure!(
        diffs.is_empty(),
        "error replies differ from redis-server:\n{}",
        diffs.join("\n")
    );
    assert_serves(&c, 0).await?;
    c.shutdown();
    Ok(())
}
