//! ACL users are cluster state: a user created through one node
//! authenticates on every node, with the same permissions, and is still there
//! after every node of the cluster was stopped and started again. Also:
//! `CONFIG SET requirepass` on one node makes new connections to every node
//! answer `NOAUTH`, and protected mode refuses a client whose address is not
//! 127.0.0.1 while the default user has no password.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dkv_integration::{Cluster, RawConn, Reply};

fn ok() -> Reply {
    Reply::Simple("OK".into())
}

fn err(text: &str) -> Reply {
    Reply::Error(text.into())
}

/// Waits (bounded) until node `i` has applied everything committed so far:
/// a linearizable read there (`ACL USERS`) returns only after it has.
async fn barrier(cluster: &Cluster, i: usize, auth: Option<(&str, &str)>) -> Result<()> {
    let mut conn = RawConn::connect(cluster.resp_addr(i)).await?;
    if let Some((user, pass)) = auth {
        conn.command(&[b"AUTH", user.as_bytes(), pass.as_bytes()])
            .await?;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match conn.command(&[b"ACL", b"USERS"]).await? {
            Reply::Array(Some(_)) => return Ok(()),
            other if Instant::now() > deadline => bail!("ACL USERS on node {i}: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// `alice` authenticates on every node and has exactly her permissions there.
async fn check_alice_everywhere(cluster: &Cluster) -> Result<()> {
    for i in 0..cluster.len() {
        barrier(cluster, i, None).await?;
        let mut conn = RawConn::connect(cluster.resp_addr(i)).await?;
        assert_eq!(
            conn.command(&[b"AUTH", b"alice", b"wrong"]).await?,
            err("WRONGPASS invalid username-password pair or user is disabled."),
            "node {i}"
        );
        assert_eq!(
            conn.command(&[b"AUTH", b"alice", b"s3cret"]).await?,
            ok(),
            "node {i}"
        );
        assert_eq!(
            conn.command(&[b"ACL", b"WHOAMI"]).await?,
            Reply::Bulk(Some(b"alice".to_vec()))
        );
        let key = format!("app:{i}");
        assert_eq!(
            conn.command(&[b"SET", key.as_bytes(), b"v"]).await?,
            ok(),
            "node {i}"
        );
        assert_eq!(
            conn.command(&[b"GET", key.as_bytes()]).await?,
            Reply::Bulk(Some(b"v".to_vec()))
        );
        assert_eq!(
            conn.command(&[b"SET", b"other", b"v"]).await?,
            err("NOPERM this user has no permissions to access one of the keys used as arguments"),
            "node {i}"
        );
        assert_eq!(
            conn.command(&[b"FLUSHALL"]).await?,
            err("NOPERM this user has no permissions to run the 'flushall' command"),
            "node {i}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_replicated_and_survive_a_full_restart() -> Result<()> {
    // Snapshots every few entries, so the restart restores users from a
    // snapshot as well as from the log after it.
    let mut cluster = Cluster::start_with(3, |c| {
        c.raft_extra = "snapshot_every_entries: 8, snapshot_log_growth_percent: 0".to_string();
    })
    .await?;
    cluster.wait_for_leader(Duration::from_secs(20)).await?;
    // Created through a follower: the write is forwarded, and the permission
    // check happened at the follower.
    let follower = (cluster.leader() + 1) % cluster.len();
    let mut admin = RawConn::connect(cluster.resp_addr(follower)).await?;
    let reply = admin
        .command(&[
            b"ACL",
            b"SETUSER",
            b"alice",
            b"on",
            b">s3cret",
            b"~app:*",
            b"+@all",
            b"-@dangerous",
        ])
        .await?;
    assert_eq!(reply, ok());
    check_alice_everywhere(&cluster)
        .await
        .map_err(|e| anyhow::anyhow!("{e:#}\n{}", cluster.log_report()))?;

    for n in 0..20 {
        let key = format!("filler:{n}");
        assert_eq!(admin.command(&[b"SET", key.as_bytes(), b"x"]).await?, ok());
    }
    // Every node down, then up again: the users come back from the
    // snapshot and the log after it.
    for i in 0..cluster.len() {
        cluster.stop(i).await?;
    }
    for i in 0..cluster.len() {
        cluster.restart(i).await?;
    }
    cluster.wait_for_leader(Duration::from_secs(20)).await?;
    check_alice_everywhere(&cluster)
        .await
        .map_err(|e| anyhow::anyhow!("after restart: {e:#}\n{}", cluster.log_report()))?;

    // ACL DELUSER on one node: alice is gone everywhere.
    let mut admin = RawConn::connect(cluster.resp_addr(0)).await?;
    assert_eq!(
        admin.command(&[b"ACL", b"DELUSER", b"alice"]).await?,
        Reply::Integer(1)
    );
    for i in 0..cluster.len() {
        barrier(&cluster, i, None).await?;
        let mut conn = RawConn::connect(cluster.resp_addr(i)).await?;
        assert_eq!(
            conn.command(&[b"AUTH", b"alice", b"s3cret"]).await?,
            err("WRONGPASS invalid username-password pair or user is disabled."),
            "node {i}"
        );
    }
    cluster.shutdown();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requirepass_set_on_one_node_applies_to_new_connections_on_all() -> Result<()> {
    let mut cluster = Cluster::start(3).await?;
    cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let mut admin = RawConn::connect(cluster.resp_addr(0)).await?;
    assert_eq!(
        admin
            .command(&[b"CONFIG", b"SET", b"requirepass", b"pw"])
            .await?,
        ok()
    );
    for i in 0..cluster.len() {
        barrier(&cluster, i, Some(("default", "pw"))).await?;
        let mut conn = RawConn::connect(cluster.resp_addr(i)).await?;
        assert_eq!(
            conn.command(&[b"GET", b"k"]).await?,
            err("NOAUTH Authentication required."),
            "node {i}"
        );
        assert_eq!(conn.command(&[b"AUTH", b"pw"]).await?, ok(), "node {i}");
        assert_eq!(
            conn.command(&[b"GET", b"k"]).await?,
            Reply::Bulk(None),
            "node {i}"
        );
    }
    // The connection that set it was authenticated before: it still is.
    assert_eq!(
        admin
            .command(&[b"CONFIG", b"SET", b"requirepass", b""])
            .await?,
        ok()
    );
    cluster.shutdown();
    Ok(())
}

/// Connects to `addr` from source address 127.0.0.2 (loopback, but not
/// what Redis 7.0 counts as local).
async fn connect_from_127_0_0_2(addr: std::net::SocketAddr) -> Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind("127.0.0.2:0".parse()?)?;
    tokio::time::timeout(Duration::from_secs(5), socket.connect(addr))
        .await
        .context("connect timed out")?
        .context("connect from 127.0.0.2")
}

async fn read_all(stream: &mut tokio::net::TcpStream) -> Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out))
        .await
        .context("the server did not close the connection")??;
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_mode_refuses_non_local_clients_while_no_password_is_set() -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut cluster = Cluster::start(1).await?;
    cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let addr = cluster.resp_addr(0);
    let mut stream = connect_from_127_0_0_2(addr).await?;
    let refused = read_all(&mut stream).await?;
    let text = String::from_utf8_lossy(&refused);
    assert!(
        text.starts_with("-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user.")
            && text.ends_with("from the outside.\r\n"),
        "{text}"
    );
    // With a password, the same client is let in (and must authenticate).
    let mut admin = RawConn::connect(addr).await?;
    assert_eq!(
        admin
            .command(&[b"CONFIG", b"SET", b"requirepass", b"pw"])
            .await?,
        ok()
    );
    let mut stream = connect_from_127_0_0_2(addr).await?;
    stream.write_all(b"PING\r\nQUIT\r\n").await?;
    let answered = read_all(&mut stream).await?;
    assert_eq!(
        String::from_utf8_lossy(&answered),
        "-NOAUTH Authentication required.\r\n+OK\r\n"
    );
    cluster.shutdown();
    Ok(())
}

/// `auth.requirepass` from the config file reaches the cluster at start;
/// `ACL SAVE` writes a node's users to `auth.aclfile`, and `ACL LOAD` makes
/// the file's users every node's users.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_requirepass_and_acl_save_load() -> Result<()> {
    let acl_dir = tempfile::tempdir()?;
    let acl_file = acl_dir.path().join("users.acl");
    let file_for_config = acl_file.clone();
    let mut cluster = Cluster::start_with(3, move |c| {
        c.extra_yaml = format!(
            "auth: {{ requirepass: cfgpw, aclfile: {:?} }}\n",
            file_for_config.to_string_lossy()
        );
    })
    .await?;
    cluster.wait_for_leader(Duration::from_secs(20)).await?;
    // The password is proposed once a leader takes writes: wait (bounded)
    // until a new connection to every node needs it.
    for i in 0..cluster.len() {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut conn = RawConn::connect(cluster.resp_addr(i)).await?;
            match conn.command(&[b"PING"]).await? {
                Reply::Error(e) if e == "NOAUTH Authentication required." => {
                    assert_eq!(conn.command(&[b"AUTH", b"cfgpw"]).await?, ok());
                    break;
                }
                _ if Instant::now() > deadline => {
                    bail!("node {i} never required the configured password")
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    let mut admin = RawConn::connect(cluster.resp_addr(0)).await?;
    assert_eq!(admin.command(&[b"AUTH", b"cfgpw"]).await?, ok());
    assert_eq!(
        admin
            .command(&[b"ACL", b"SETUSER", b"bob", b"on", b">bobpw", b"~b:*", b"+get"])
            .await?,
        ok()
    );
    assert_eq!(admin.command(&[b"ACL", b"SAVE"]).await?, ok());
    let saved = std::fs::read_to_string(&acl_file)?;
    assert!(
        saved.lines().any(|l| l.starts_with("user bob on #")),
        "{saved}"
    );
    assert!(!saved.contains("bobpw"), "a plain password was saved");
    // The file, edited: carol added, bob kept. LOAD replaces every user.
    std::fs::write(
        &acl_file,
        format!("{saved}user carol on >carolpw ~* +@all\n"),
    )?;
    assert_eq!(admin.command(&[b"ACL", b"LOAD"]).await?, ok());
    for i in 0..cluster.len() {
        barrier(&cluster, i, Some(("default", "cfgpw"))).await?;
        let mut conn = RawConn::connect(cluster.resp_addr(i)).await?;
        assert_eq!(
            conn.command(&[b"AUTH", b"carol", b"carolpw"]).await?,
            ok(),
            "node {i}"
        );
        assert_eq!(
            conn.command(&[b"AUTH", b"bob", b"bobpw"]).await?,
            ok(),
            "node {i}"
        );
    }
    // A bad file is refused as a whole, with the line named.
    std::fs::write(&acl_file, "user dave on +nosuch\n")?;
    match admin.command(&[b"ACL", b"LOAD"]).await? {
        Reply::Error(e) => assert!(
            e.contains(":1: Error in ACL SETUSER modifier '+nosuch'"),
            "{e}"
        ),
        other => bail!("ACL LOAD of a bad file: {other:?}"),
    }
    cluster.shutdown();
    Ok(())
}

/// The replies Redis 7.0.15 gives a user without read access to every key
/// (`~k*`) for SORT's `BY`/`GET` patterns (captured from `redis-server`
/// 7.0.15 with the same users and data).
fn sort_denials() -> Vec<(&'static [&'static str], Reply)> {
    let by = err("ERR BY option of SORT denied due to insufficient ACL permissions.");
    let get = err("ERR GET option of SORT denied due to insufficient ACL permissions.");
    vec![
        (&["SORT", "k1", "BY", "w_*"], by.clone()),
        (&["SORT", "k1", "GET", "#"], get.clone()),
        (&["SORT_RO", "k1", "GET", "w_*"], get.clone()),
        (&["SORT", "k1", "BY", "w_*", "STORE", "kout"], by.clone()),
        (&["SORT", "k1", "GET", "#", "BY", "w_*"], get),
        (&["SORT", "k1", "BY", "w_*", "foo"], by),
        (&["SORT", "k1", "foo", "BY", "w_*"], err("ERR syntax error")),
        (
            &["SORT", "k1", "LIMIT", "x", "1", "BY", "w_*"],
            err("ERR value is not an integer or out of range"),
        ),
    ]
}

async fn run(conn: &mut RawConn, args: &[&str]) -> Result<Reply> {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    conn.command(&args).await
}

fn bulks(items: &[&str]) -> Reply {
    Reply::Array(Some(
        items
            .iter()
            .map(|i| Reply::Bulk(Some(i.as_bytes().to_vec())))
            .collect(),
    ))
}

/// SORT's `BY` and `GET` patterns name keys the ACL check cannot see, so a
/// user without read access to every key is refused them, on the leader and
/// on a follower, before anything is read or stored; not logged in ACL LOG;
/// inside MULTI refused at EXEC. `%R~*` is enough to use them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sort_patterns_need_read_access_to_every_key() -> Result<()> {
    let mut cluster = Cluster::start(3).await?;
    cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let leader = cluster.leader();
    let mut admin = RawConn::connect(cluster.resp_addr(leader)).await?;
    for line in [
        &["ACL", "SETUSER", "u", "on", ">p", "+@all", "~k*"][..],
        &["ACL", "SETUSER", "r", "on", ">p", "+@all", "~k*", "%R~*"],
        &["RPUSH", "k1", "3", "1", "2"],
        &["SET", "w_1", "5"],
    ] {
        let reply = run(&mut admin, line).await?;
        assert!(!matches!(reply, Reply::Error(_)), "{line:?}: {reply:?}");
    }
    for i in [leader, (leader + 1) % cluster.len()] {
        barrier(&cluster, i, None).await?;
        let mut conn = RawConn::connect(cluster.resp_addr(i)).await?;
        assert_eq!(run(&mut conn, &["AUTH", "u", "p"]).await?, ok());
        for (line, expected) in sort_denials() {
            assert_eq!(run(&mut conn, line).await?, expected, "node {i}: {line:?}");
        }
        assert_eq!(
            run(&mut conn, &["SORT", "k1"]).await?,
            bulks(&["1", "2", "3"])
        );
        assert_eq!(
            run(&mut conn, &["SORT", "k1", "BY", "nosort"]).await?,
            bulks(&["3", "1", "2"])
        );
        assert_eq!(run(&mut conn, &["MULTI"]).await?, ok());
        for line in [&["SORT", "k1", "GET", "#"][..], &["LLEN", "k1"]] {
            assert_eq!(run(&mut conn, line).await?, Reply::Simple("QUEUED".into()));
        }
        assert_eq!(
            run(&mut conn, &["EXEC"]).await?,
            Reply::Array(Some(vec![
                err("ERR GET option of SORT denied due to insufficient ACL permissions."),
                Reply::Integer(3),
            ]))
        );
        let mut reader = RawConn::connect(cluster.resp_addr(i)).await?;
        assert_eq!(run(&mut reader, &["AUTH", "r", "p"]).await?, ok());
        assert_eq!(
            run(&mut reader, &["SORT_RO", "k1", "BY", "w_*", "GET", "#"]).await?,
            bulks(&["2", "3", "1"])
        );
    }
    // Nothing stored by the refused SORT ... STORE, nothing logged.
    assert_eq!(
        run(&mut admin, &["EXISTS", "kout"]).await?,
        Reply::Integer(0)
    );
    assert_eq!(
        run(&mut admin, &["ACL", "LOG"]).await?,
        Reply::Array(Some(vec![]))
    );
    cluster.shutdown();
    Ok(())
}
