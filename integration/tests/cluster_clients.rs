//! Cluster-aware clients against a 3-node dkv cluster in
//! `follower_writes: redirect` mode (the mode for them: a follower answers
//! a write with `MOVED <slot> <leader>`): the `CLUSTER` replies every node
//! gives, compared where it matters with a real Redis 7.0 cluster node;
//! then redis-py `RedisCluster` (integration/compat/cluster_clients.py),
//! ioredis `Cluster` (integration/compat/cluster_clients.js) and
//! `redis-cli -c`, each bootstrapped through a follower, running the
//! compatibility checks a cluster client can run and then writing on while
//! the test kills the leader: they must follow the new leader, and every
//! write acknowledged before the kill must still read back.
//!
//! A client that is not installed is skipped with a printed reason (a
//! failure under CI, where .ci/run installs them).

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use dkv_integration::external::{compat_dir, run_bounded, tool_missing};
use dkv_integration::process::die_with_parent;
use dkv_integration::{program_available, Cluster, RawConn, Reply};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// How long a client script may run, both phases together.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the cluster may take to agree on a leader.
const LEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// A 3-node cluster whose followers redirect writes; returns it with its
/// leader's index.
async fn redirect_cluster() -> Result<(Cluster, usize)> {
    let mut cluster = Cluster::start_with(3, |node| {
        node.extra_yaml.push_str("follower_writes: redirect\n");
    })
    .await?;
    let leader = cluster.wait_for_leader(LEADER_TIMEOUT).await?;
    Ok((cluster, leader))
}

fn b(s: &str) -> &[u8] {
    s.as_bytes()
}

async fn command(addr: SocketAddr, args: &[&str]) -> Result<Reply> {
    let mut conn = RawConn::connect(addr).await?;
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    conn.command(&args).await
}

fn text(reply: &Reply) -> Result<String> {
    match reply {
        Reply::Bulk(Some(bytes)) => Ok(String::from_utf8_lossy(bytes).into_owned()),
        Reply::Simple(s) => Ok(s.clone()),
        other => bail!("expected text, got {other:?}"),
    }
}

fn array(reply: &Reply) -> Result<&[Reply]> {
    match reply {
        Reply::Array(Some(items)) => Ok(items),
        other => bail!("expected an array, got {other:?}"),
    }
}

/// One `CLUSTER SLOTS` node entry: `(ip:port, id)`.
fn slot_node(reply: &Reply) -> Result<(String, String)> {
    let fields = array(reply)?;
    let [ip, Reply::Integer(port), id, Reply::Array(Some(meta))] = fields else {
        bail!("a CLUSTER SLOTS node is [ip, port, id, []]: {fields:?}");
    };
    let id = text(id)?;
    if id.len() != 40 || !id.bytes().all(|c| c.is_ascii_hexdigit()) || !meta.is_empty() {
        bail!("a node id is 40 hex characters, its metadata empty: {fields:?}");
    }
    Ok((format!("{}:{port}", text(ip)?), id))
}

/// `CLUSTER SLOTS` at `addr`: the one range's nodes, master first.
async fn slots(addr: SocketAddr) -> Result<Vec<(String, String)>> {
    let reply = command(addr, &["CLUSTER", "SLOTS"]).await?;
    let ranges = array(&reply)?;
    let [range] = ranges else {
        bail!("one slot range expected: {reply:?}");
    };
    let range = array(range)?;
    if range.len() < 3 || range[0] != Reply::Integer(0) || range[1] != Reply::Integer(16383) {
        bail!("the range is 0-16383 with a master: {range:?}");
    }
    range[2..].iter().map(slot_node).collect()
}

/// Every node presents the same shard: the leader as master, the others
/// as replicas, with stable 40-hex ids that `CLUSTER MYID` confirms.
async fn check_topology(cluster: &Cluster, nodes: &[usize], leader: usize) -> Result<()> {
    let mut first: Option<Vec<(String, String)>> = None;
    for &i in nodes {
        let addr = cluster.resp_addr(i);
        let view = slots(addr).await?;
        if view[0].0 != cluster.resp_addr(leader).to_string() {
            bail!(
                "node {i} shows master {} instead of the leader {leader}",
                view[0].0
            );
        }
        let mut addrs: Vec<String> = view.iter().map(|(a, _)| a.clone()).collect();
        addrs.sort();
        let mut all: Vec<String> = (0..cluster.len())
            .map(|j| cluster.resp_addr(j).to_string())
            .collect();
        all.sort();
        if addrs != all {
            bail!("node {i} lists {addrs:?}, the members are {all:?}");
        }
        let myid = text(&command(addr, &["CLUSTER", "MYID"]).await?)?;
        let mine = view.iter().find(|(a, _)| *a == addr.to_string());
        if mine.map(|(_, id)| id) != Some(&myid) {
            bail!("node {i}'s MYID {myid} is not its id in CLUSTER SLOTS {view:?}");
        }
        match &first {
            None => first = Some(view),
            Some(seen) if *seen != view => bail!("nodes disagree: {seen:?} vs {view:?}"),
            Some(_) => {}
        }
    }
    Ok(())
}

/// The CLUSTER replies of every node, `MOVED` with the key's slot from a
/// follower, READONLY reads on a follower, and the same after the leader
/// is killed: the new leader is master everywhere, the epoch moved on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_presents_one_shard_led_by_the_raft_leader() -> Result<()> {
    let (mut cluster, leader) = redirect_cluster().await?;
    check_topology(&cluster, &[0, 1, 2], leader).await?;
    check_role(&cluster, &[0, 1, 2], leader).await?;
    let follower = (leader + 1) % 3;
    let leader_addr = cluster.resp_addr(leader);
    let faddr = cluster.resp_addr(follower);
    let moved = command(faddr, &["SET", "foo", "bar"]).await?;
    assert_eq!(moved, Reply::Error(format!("MOVED 12182 {leader_addr}")));
    let moved = command(faddr, &["HSET", "{user1000}.x", "f", "v"]).await?;
    assert_eq!(moved, Reply::Error(format!("MOVED 3443 {leader_addr}")));
    let moved = command(faddr, &["FLUSHALL"]).await?;
    assert_eq!(moved, Reply::Error(format!("MOVED 0 {leader_addr}")));
    assert_eq!(
        command(leader_addr, &["SET", "foo", "bar"]).await?,
        Reply::Simple("OK".into())
    );
    // A plain read on a follower is linearizable; a READONLY one local.
    let read = command(faddr, &["GET", "foo"]).await?;
    assert_eq!(read, Reply::Bulk(Some(b"bar".to_vec())));
    let mut conn = RawConn::connect(faddr).await?;
    assert_eq!(
        conn.command(&[b("READONLY")]).await?,
        Reply::Simple("OK".into())
    );
    // Possibly stale, so until it shows (bounded).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while conn.command(&[b("GET"), b("foo")]).await? != Reply::Bulk(Some(b"bar".to_vec())) {
        if tokio::time::Instant::now() > deadline {
            bail!("a READONLY read on a follower never saw the write");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        conn.command(&[b("CLUSTER"), b("COUNTKEYSINSLOT"), b("12182")])
            .await?,
        Reply::Integer(1)
    );
    let info = text(&command(faddr, &["INFO", "cluster"]).await?)?;
    assert!(info.contains("cluster_enabled:1"), "{info}");
    let cluster_info = text(&command(faddr, &["CLUSTER", "INFO"]).await?)?;
    assert!(
        cluster_info.starts_with("cluster_state:ok\r\n"),
        "{cluster_info}"
    );
    let epoch = |info: &str| -> Result<u64> {
        info.lines()
            .find_map(|l| l.strip_prefix("cluster_current_epoch:"))
            .context("cluster_current_epoch")?
            .trim()
            .parse()
            .context("epoch")
    };
    let before = epoch(&cluster_info)?;

    cluster.kill9(leader)?;
    let new_leader = cluster.wait_for_leader(LEADER_TIMEOUT).await?;
    let survivors: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    check_topology(&cluster, &survivors, new_leader).await?;
    check_role(&cluster, &survivors, new_leader).await?;
    let other = survivors
        .iter()
        .copied()
        .find(|&i| i != new_leader)
        .context("a surviving follower")?;
    let moved = command(cluster.resp_addr(other), &["SET", "foo", "baz"]).await?;
    let new_addr = cluster.resp_addr(new_leader);
    assert_eq!(moved, Reply::Error(format!("MOVED 12182 {new_addr}")));
    let after = text(&command(new_addr, &["CLUSTER", "INFO"]).await?)?;
    assert!(epoch(&after)? > before, "{after}");
    cluster.shutdown();
    Ok(())
}

/// ROLE on every node of `nodes`: the leader is `master` and lists each
/// other voter's RESP address; a follower is a `connected` `slave` of the
/// leader's RESP address (retried briefly: a follower learns a new leader
/// from its first heartbeat).
async fn check_role(cluster: &Cluster, nodes: &[usize], leader: usize) -> Result<()> {
    let leader_addr = cluster.resp_addr(leader);
    let role = array(&command(leader_addr, &["ROLE"]).await?)?.to_vec();
    assert_eq!(role.first(), Some(&Reply::Bulk(Some(b"master".to_vec()))));
    assert!(
        matches!(role.get(1), Some(Reply::Integer(n)) if *n > 0),
        "{role:?}"
    );
    let mut replicas = Vec::new();
    for replica in array(role.get(2).context("replicas")?)? {
        let fields = array(replica)?;
        replicas.push(format!("{}:{}", text(&fields[0])?, text(&fields[1])?));
        text(&fields[2])?
            .parse::<u64>()
            .context("a replica offset")?;
    }
    let mut others: Vec<String> = (0..3)
        .filter(|&i| i != leader)
        .map(|i| cluster.resp_addr(i).to_string())
        .collect();
    replicas.sort();
    others.sort();
    assert_eq!(replicas, others);
    for &node in nodes.iter().filter(|&&n| n != leader) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let role = command(cluster.resp_addr(node), &["ROLE"]).await?;
            let fields = array(&role)?;
            let (host, port) = (leader_addr.ip().to_string(), leader_addr.port());
            let named = fields.len() == 5
                && fields[0] == Reply::Bulk(Some(b"slave".to_vec()))
                && fields[1] == Reply::Bulk(Some(host.into_bytes()))
                && fields[2] == Reply::Integer(i64::from(port))
                && fields[3] == Reply::Bulk(Some(b"connected".to_vec()))
                && matches!(fields[4], Reply::Integer(n) if n > 0);
            if named {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                bail!("node {node}'s ROLE never named leader {leader_addr}: {role:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

/// A real `redis-server --cluster-enabled yes` owning every slot; killed on
/// drop.
struct RedisClusterNode {
    child: std::process::Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for RedisClusterNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_redis_cluster_node() -> Result<RedisClusterNode> {
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut server = Command::new("redis-server");
    server
        .current_dir(dir.path())
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
        ])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    die_with_parent(&mut server);
    let node = RedisClusterNode {
        child: server.spawn().context("spawn redis-server")?,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        _dir: dir,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut added = false;
    loop {
        if !added {
            added = command(node.addr, &["CLUSTER", "ADDSLOTSRANGE", "0", "16383"])
                .await
                .is_ok_and(|r| r == Reply::Simple("OK".into()));
        }
        if added {
            let info = command(node.addr, &["CLUSTER", "INFO"]).await;
            if info.is_ok_and(|i| text(&i).is_ok_and(|t| t.starts_with("cluster_state:ok"))) {
                return Ok(node);
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!("redis-server cluster node on {} did not come up", node.addr);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The field names of a map flattened into an array (RESP2).
fn keys_of(reply: &Reply) -> Result<Vec<String>> {
    array(reply)?.iter().step_by(2).map(text).collect()
}

/// KEYSLOT of many keys (hash tags and their edge cases included), the
/// errors of bad slot arguments and arities, and the shapes of SLOTS,
/// SHARDS and INFO, against a real Redis 7.0 cluster node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_and_replies_match_a_real_redis_cluster_node() -> Result<()> {
    if !program_available("redis-server", "--version") {
        return tool_missing("redis-server is not installed");
    }
    let redis = start_redis_cluster_node().await?;
    let (cluster, leader) = redirect_cluster().await?;
    let dkv = cluster.resp_addr(leader);
    let mut ours = RawConn::connect(dkv).await?;
    let mut theirs = RawConn::connect(redis.addr).await?;
    let mut keys: Vec<Vec<u8>> = ["", "{", "}", "{}", "{}{a}", "a{b}c", "{{a}}", "x{}y{z}"]
        .iter()
        .map(|k| k.as_bytes().to_vec())
        .collect();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for n in 0..500 {
        let mut key = Vec::new();
        for _ in 0..(n % 13) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            key.push(b"ab{}\x00\xff9"[(seed % 7) as usize]);
        }
        keys.push(key);
    }
    for key in &keys {
        let request = [b("CLUSTER"), b("KEYSLOT"), key.as_slice()];
        let (a, b_) = (
            ours.command(&request).await?,
            theirs.command(&request).await?,
        );
        assert_eq!(a, b_, "KEYSLOT {:?}", String::from_utf8_lossy(key));
    }
    for key in ["foo", "{foo}.a", "{foo}.b", "bar", "{user1000}.x"] {
        for conn in [&mut ours, &mut theirs] {
            conn.command(&[b("SET"), b(key), b("1")]).await?;
        }
    }
    for line in [
        "CLUSTER COUNTKEYSINSLOT 12182",
        "CLUSTER COUNTKEYSINSLOT 0",
        "CLUSTER COUNTKEYSINSLOT -1",
        "CLUSTER COUNTKEYSINSLOT 16384",
        "CLUSTER COUNTKEYSINSLOT abc",
        "CLUSTER GETKEYSINSLOT 3443 10",
        "CLUSTER GETKEYSINSLOT 12182 0",
        "CLUSTER GETKEYSINSLOT 1 -1",
        "CLUSTER GETKEYSINSLOT 16384 1",
        "CLUSTER GETKEYSINSLOT x 1",
        "CLUSTER GETKEYSINSLOT 1 x",
        "CLUSTER KEYSLOT",
        "CLUSTER KEYSLOT a b",
        "CLUSTER MYID x",
        "CLUSTER SLOTS x",
        "CLUSTER",
        "CLUSTER nosuch",
        "CLUSTER REPLICAS nosuchnode",
        "CLUSTER COUNT-FAILURE-REPORTS nosuchnode",
        "ASKING",
        "ASKING x",
        "READONLY",
        "READWRITE",
    ] {
        let request: Vec<&[u8]> = line.split(' ').map(b).collect();
        let (a, b_) = (
            ours.command(&request).await?,
            theirs.command(&request).await?,
        );
        assert_eq!(a, b_, "{line}");
    }
    // Shapes: one range whose nodes are [ip, port, 40-hex id, []]; SHARDS'
    // and INFO's fields in Redis's order.
    for addr in [dkv, redis.addr] {
        let view = slots(addr).await?;
        assert!(!view.is_empty());
    }
    let shard_fields = |reply: &Reply| -> Result<(Vec<String>, Vec<String>)> {
        let shard = &array(reply)?[0];
        let top = keys_of(shard)?;
        let nodes = array(&array(shard)?[3])?;
        Ok((top, keys_of(&nodes[0])?))
    };
    let request = [b("CLUSTER"), b("SHARDS")];
    assert_eq!(
        shard_fields(&ours.command(&request).await?)?,
        shard_fields(&theirs.command(&request).await?)?
    );
    // Redis adds a line per bus message type it has counted
    // (`cluster_stats_messages_ping_sent`); dkv has no cluster bus and
    // shows the totals only.
    let info_fields = |reply: &Reply| -> Result<Vec<String>> {
        Ok(text(reply)?
            .lines()
            .filter_map(|l| l.split(':').next())
            .filter(|f| !(f.starts_with("cluster_stats_messages_") && f.matches('_').count() > 3))
            .map(str::to_string)
            .collect())
    };
    let request = [b("CLUSTER"), b("INFO")];
    assert_eq!(
        info_fields(&ours.command(&request).await?)?,
        info_fields(&theirs.command(&request).await?)?
    );
    cluster.shutdown();
    Ok(())
}

/// Runs a client script in two phases around a leader kill: its phase 1
/// (bootstrap through `entry`, the compatibility checks) up to the line
/// `phase1 done`; then the test kills the leader and writes
/// `go <killed address>` to the script, which must follow the new leader.
/// Returns everything the script printed.
async fn run_across_leader_kill(
    cluster: &mut Cluster,
    leader: usize,
    mut command: Command,
    what: &str,
) -> Result<String> {
    die_with_parent(&mut command);
    let mut child = tokio::process::Command::from(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("spawn {what}"))?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let mut stderr = child.stderr.take().context("stderr")?;
    let mut transcript = String::new();
    let run = async {
        let mut phase1 = false;
        while let Some(line) = lines.next_line().await? {
            transcript.push_str(&line);
            transcript.push('\n');
            if line == "phase1 done" && !phase1 {
                phase1 = true;
                let killed = cluster.resp_addr(leader);
                cluster.kill9(leader)?;
                stdin.write_all(format!("go {killed}\n").as_bytes()).await?;
                stdin.flush().await?;
            }
        }
        let status = child.wait().await?;
        let mut errors = String::new();
        stderr.read_to_string(&mut errors).await?;
        anyhow::Ok((phase1, status, errors))
    };
    let outcome = tokio::time::timeout(SCRIPT_TIMEOUT, run).await;
    let (phase1, status, errors) = match outcome {
        Ok(outcome) => outcome?,
        Err(_) => bail!("{what} still running after {SCRIPT_TIMEOUT:?}:\n{transcript}"),
    };
    if !phase1 || !status.success() {
        bail!("{what} failed ({status}, phase 1 done: {phase1}):\n{transcript}{errors}");
    }
    Ok(transcript)
}

/// redis-py `RedisCluster` through a follower: the compatibility checks,
/// replica reads, then writes across a leader kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_cluster_follows_a_leader_kill() -> Result<()> {
    let python = compat_dir().join("venv/bin/python3");
    let has_cluster = Command::new(&python)
        .args(["-c", "import redis.cluster"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_cluster {
        return tool_missing(&format!(
            "no redis-py with redis.cluster in {} (python3 -m venv integration/compat/venv && integration/compat/venv/bin/pip install 'redis>=5')",
            python.display()
        ));
    }
    let (mut cluster, leader) = redirect_cluster().await?;
    let entry = cluster.resp_addr((leader + 1) % 3);
    let mut c = Command::new(&python);
    c.arg(compat_dir().join("cluster_clients.py"))
        .arg(entry.ip().to_string())
        .arg(entry.port().to_string())
        .arg(cluster.resp_addr(leader).to_string());
    let out = run_across_leader_kill(&mut cluster, leader, c, "redis-py cluster script").await?;
    println!("{out}");
    assert!(out.contains("redis-py cluster: all checks passed"), "{out}");
    cluster.shutdown();
    Ok(())
}

/// ioredis `Cluster` through a follower: the compatibility checks, replica
/// reads (`scaleReads: "slave"`), then writes across a leader kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ioredis_cluster_follows_a_leader_kill() -> Result<()> {
    if !program_available("node", "--version")
        || !compat_dir().join("node_modules/ioredis").exists()
    {
        return tool_missing(
            "node or ioredis is not installed (cd integration/compat && npm install ioredis)",
        );
    }
    let (mut cluster, leader) = redirect_cluster().await?;
    let entry = cluster.resp_addr((leader + 1) % 3);
    let mut c = Command::new("node");
    c.current_dir(compat_dir())
        .arg("cluster_clients.js")
        .arg(entry.ip().to_string())
        .arg(entry.port().to_string())
        .arg(cluster.resp_addr(leader).to_string());
    let out = run_across_leader_kill(&mut cluster, leader, c, "ioredis cluster script").await?;
    println!("{out}");
    assert!(out.contains("ioredis cluster: all checks passed"), "{out}");
    cluster.shutdown();
    Ok(())
}

async fn redis_cli(addr: SocketAddr, args: &[&str]) -> Result<String> {
    let mut c = Command::new("redis-cli");
    c.args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(args);
    run_bounded(c, "redis-cli", Duration::from_secs(20)).await
}

/// `redis-cli -c` follows `MOVED` from a follower to the leader, and to the
/// new leader after the old one is killed; `redis-cli --cluster check`
/// finds every slot covered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_c_follows_moved_across_a_leader_kill() -> Result<()> {
    if !program_available("redis-cli", "--version") {
        return tool_missing("redis-cli is not installed");
    }
    let (mut cluster, leader) = redirect_cluster().await?;
    let follower = (leader + 1) % 3;
    let faddr = cluster.resp_addr(follower);
    let plain = redis_cli(faddr, &["SET", "foo", "bar"]).await?;
    assert!(plain.contains("MOVED 12182"), "{plain}");
    assert_eq!(
        redis_cli(faddr, &["-c", "SET", "foo", "bar"]).await?.trim(),
        "OK"
    );
    assert_eq!(redis_cli(faddr, &["-c", "INCR", "n"]).await?.trim(), "1");
    let other = cluster.resp_addr((leader + 2) % 3);
    assert_eq!(redis_cli(other, &["-c", "GET", "foo"]).await?.trim(), "bar");
    let check = redis_cli(faddr, &["--cluster", "check", &faddr.to_string()]).await?;
    assert!(check.contains("[OK] All 16384 slots covered."), "{check}");

    cluster.kill9(leader)?;
    // Through the surviving follower, until the election is over (bounded):
    // meanwhile redis-cli may be sent to the dead leader or told
    // CLUSTERDOWN.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let out = redis_cli(faddr, &["-c", "SET", "after", "kill"]).await;
        if out.as_ref().is_ok_and(|o| o.trim() == "OK") {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("redis-cli -c never wrote after the leader kill; last answer: {out:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("redis-cli -c wrote after the kill at attempt {attempts}");
    let new_leader = cluster.wait_for_leader(LEADER_TIMEOUT).await?;
    let survivor = (0..3)
        .find(|&i| i != leader && i != new_leader)
        .context("a surviving follower")?;
    let saddr = cluster.resp_addr(survivor);
    assert!(redis_cli(saddr, &["SET", "x", "1"])
        .await?
        .contains("MOVED"));
    for (key, value) in [("foo", "bar"), ("n", "1"), ("after", "kill")] {
        assert_eq!(redis_cli(saddr, &["-c", "GET", key]).await?.trim(), value);
    }
    cluster.shutdown();
    Ok(())
}
