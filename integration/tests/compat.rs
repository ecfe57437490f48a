//! Real clients against a dkv cluster, each in its own idiom: redis-cli
//! (`--pipe` mass insert, `-3`, COMMAND DOCS for interactive hints), redis-py
//! (integration/compat/redis_py_compat.py), the `redis` crate (RESP2 and RESP3)
//! and ioredis (integration/compat/ioredis_compat.js); redis-py 5+ from the
//! venv integration/compat/venv runs the same script as a RESP3 client; raw
//! connections check CLIENT LIST / CLIENT KILL. A test whose client is not
//! installed is skipped with a printed reason (.ci/run installs them all).

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use dkv_integration::external::compat_dir;
use dkv_integration::{program_available, Cluster};

async fn cluster() -> Result<(Cluster, SocketAddr)> {
    let mut cluster = Cluster::start(3).await?;
    let leader = cluster.wait_for_leader(Duration::from_secs(20)).await?;
    // A follower: every write is forwarded, every read takes a ReadIndex.
    let addr = cluster.resp_addr((leader + 1) % 3);
    Ok((cluster, addr))
}

/// Runs a client program and fails with its output unless it succeeds.
fn run(mut command: Command, what: &str) -> Result<String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("spawn {what}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        bail!("{what} failed ({}):\n{text}", output.status);
    }
    Ok(text)
}

fn cli(addr: SocketAddr) -> Command {
    let mut c = Command::new("redis-cli");
    c.args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()]);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_pipe_resp3_and_command_docs() -> Result<()> {
    if !program_available("redis-cli", "--version") {
        println!("SKIPPED: redis-cli is not installed");
        return Ok(());
    }
    let (cluster, addr) = cluster().await?;
    // --pipe mass insert of 10,000 SETs.
    let mut input = Vec::new();
    for i in 0..10_000 {
        let (k, v) = (format!("key:{i}"), format!("value:{i}"));
        write!(
            input,
            "*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n${}\r\n{v}\r\n",
            k.len(),
            v.len()
        )?;
    }
    let mut child = cli(addr)
        .arg("--pipe")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawn redis-cli --pipe")?;
    child.stdin.take().context("stdin")?.write_all(&input)?;
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("errors: 0, replies: 10000"),
        "{text}"
    );
    let dbsize = run(
        {
            let mut c = cli(addr);
            c.arg("DBSIZE");
            c
        },
        "redis-cli DBSIZE",
    )?;
    assert_eq!(dbsize.trim(), "10000");
    // -3: RESP3 (HELLO 3), a map reply printed as such.
    run(
        {
            let mut c = cli(addr);
            c.args(["HSET", "h", "f", "v"]);
            c
        },
        "HSET",
    )?;
    let map = run(
        {
            let mut c = cli(addr);
            c.args(["-3", "HGETALL", "h"]);
            c
        },
        "redis-cli -3",
    )?;
    assert!(map.contains("f") && map.contains("v"), "{map}");
    let hello = run(
        {
            let mut c = cli(addr);
            c.args(["-3", "HELLO", "3"]);
            c
        },
        "HELLO 3",
    )?;
    assert!(hello.contains("proto") && hello.contains('3'), "{hello}");
    // Interactive hints come from COMMAND DOCS: Redis-shaped entries.
    let docs = run(
        {
            let mut c = cli(addr);
            c.args(["COMMAND", "DOCS", "set"]);
            c
        },
        "COMMAND DOCS",
    )?;
    for field in ["summary", "since", "group", "arguments"] {
        assert!(docs.contains(field), "{field} missing in {docs}");
    }
    // -n selects a database; INFO keyspace shows it.
    run(
        {
            let mut c = cli(addr);
            c.args(["-n", "5", "SET", "x", "1"]);
            c
        },
        "redis-cli -n 5",
    )?;
    let info = run(
        {
            let mut c = cli(addr);
            c.args(["INFO", "keyspace"]);
            c
        },
        "INFO",
    )?;
    assert!(info.contains("db5:keys=1"), "{info}");
    cluster.shutdown();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_resp2_resp3_pipeline_transaction_expiry_scan() -> Result<()> {
    let python = ["/usr/bin/python3", "python3"].into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import redis"])
            .status()
            .is_ok_and(|s| s.success())
    });
    let Some(python) = python else {
        println!("SKIPPED: redis-py is not installed (apt-get install python3-redis)");
        return Ok(());
    };
    let (cluster, addr) = cluster().await?;
    let mut c = Command::new(python);
    c.arg(compat_dir().join("redis_py_compat.py"))
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string());
    let out = run(c, "redis-py compat script")?;
    println!("{out}");
    assert!(out.contains("all checks passed"));
    cluster.shutdown();
    Ok(())
}

/// redis-py 5 or later from the venv `integration/compat/venv` (made by
/// .ci/run: `python3 -m venv integration/compat/venv && integration/compat/venv/bin/pip
/// install 'redis>=5'`): the same script, which then also runs as a RESP3
/// client (`protocol=3`). Debian's python3-redis (4.3) is RESP2 only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_5_resp3_from_the_compat_venv() -> Result<()> {
    let python = compat_dir().join("venv/bin/python3");
    let version = Command::new(&python)
        .args(["-c", "import redis; print(redis.__version__.split('.')[0])"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let Some(major) = version
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|&m| m >= 5)
    else {
        println!(
            "SKIPPED: no redis-py >= 5 in {} (python3 -m venv integration/compat/venv && integration/compat/venv/bin/pip install 'redis>=5')",
            python.display()
        );
        return Ok(());
    };
    let (cluster, addr) = cluster().await?;
    let mut c = Command::new(&python);
    c.arg(compat_dir().join("redis_py_compat.py"))
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string());
    let out = run(c, "redis-py (venv) compat script")?;
    println!("{out}");
    assert!(out.contains("all checks passed"), "{out}");
    assert!(
        out.contains("ok resp3 "),
        "redis-py {major} ran no RESP3 check:\n{out}"
    );
    cluster.shutdown();
    Ok(())
}

/// CLIENT LIST shows other connections in Redis's format, and CLIENT KILL
/// (ID, ADDR, LADDR + SKIPME, and the old `CLIENT KILL ip:port`) closes the
/// connection it names, not just in name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_list_and_kill_close_the_named_connection() -> Result<()> {
    use dkv_integration::{RawConn, Reply};
    let (cluster, addr) = cluster().await?;
    let wait = Duration::from_secs(10);
    let text = |r: Reply| -> Result<String> {
        match r {
            Reply::Bulk(Some(b)) => Ok(String::from_utf8_lossy(&b).into_owned()),
            other => bail!("expected a bulk string, got {other:?}"),
        }
    };
    let int = |r: Reply| -> Result<i64> {
        match r {
            Reply::Integer(n) => Ok(n),
            other => bail!("expected an integer, got {other:?}"),
        }
    };
    let mut admin = RawConn::connect(addr).await?;
    let mut victim = RawConn::connect(addr).await?;
    let victim_id = int(victim.command(&[b"CLIENT", b"ID"]).await?)?;
    let _ = victim.command(&[b"CLIENT", b"SETNAME", b"victim"]).await?;
    let info = text(victim.command(&[b"CLIENT", b"INFO"]).await?)?;
    let victim_addr = info
        .split(' ')
        .find_map(|f| f.strip_prefix("addr="))
        .context("addr= in CLIENT INFO")?
        .to_string();
    let list = text(admin.command(&[b"CLIENT", b"LIST"]).await?)?;
    let line = list
        .lines()
        .find(|l| l.starts_with(&format!("id={victim_id} ")))
        .with_context(|| format!("victim {victim_id} not in CLIENT LIST:\n{list}"))?;
    assert!(
        line.contains(&format!(" addr={victim_addr} ")) && line.contains(" name=victim "),
        "{line}"
    );
    assert!(line.contains(" cmd=client|info user=default "), "{line}");
    // KILL ID: the victim's socket closes; the killer's stays open.
    assert_eq!(
        int(admin
            .command(&[b"CLIENT", b"KILL", b"ID", victim_id.to_string().as_bytes()])
            .await?)?,
        1
    );
    victim.expect_closed(wait).await.context("killed by ID")?;
    assert_eq!(
        admin.command(&[b"PING"]).await?,
        Reply::Simple("PONG".into())
    );
    let list = text(admin.command(&[b"CLIENT", b"LIST"]).await?)?;
    assert!(
        !list.contains(&format!("id={victim_id} ")),
        "a killed client leaves CLIENT LIST:\n{list}"
    );
    // Old form: CLIENT KILL ip:port.
    let mut victim = RawConn::connect(addr).await?;
    let info = text(victim.command(&[b"CLIENT", b"INFO"]).await?)?;
    let victim_addr = info
        .split(' ')
        .find_map(|f| f.strip_prefix("addr="))
        .context("addr= in CLIENT INFO")?
        .to_string();
    assert_eq!(
        admin
            .command(&[b"CLIENT", b"KILL", victim_addr.as_bytes()])
            .await?,
        Reply::Simple("OK".into())
    );
    victim
        .expect_closed(wait)
        .await
        .context("killed by ip:port")?;
    assert_eq!(
        admin
            .command(&[b"CLIENT", b"KILL", victim_addr.as_bytes()])
            .await?,
        Reply::Error("ERR No such client".into())
    );
    // LADDR matches every connection to this node; SKIPME yes spares the caller.
    let mut other = RawConn::connect(addr).await?;
    assert_eq!(
        other.command(&[b"PING"]).await?,
        Reply::Simple("PONG".into())
    );
    let killed = int(admin
        .command(&[
            b"CLIENT",
            b"KILL",
            b"LADDR",
            addr.to_string().as_bytes(),
            b"SKIPME",
            b"yes",
        ])
        .await?)?;
    assert!(killed >= 1, "{killed}");
    other.expect_closed(wait).await.context("killed by LADDR")?;
    assert_eq!(
        admin.command(&[b"PING"]).await?,
        Reply::Simple("PONG".into())
    );
    // SKIPME no: the caller gets its reply, then its connection closes.
    let me = int(admin.command(&[b"CLIENT", b"ID"]).await?)?;
    assert_eq!(
        int(admin
            .command(&[
                b"CLIENT",
                b"KILL",
                b"ID",
                me.to_string().as_bytes(),
                b"SKIPME",
                b"no"
            ])
            .await?)?,
        1
    );
    admin.expect_closed(wait).await.context("killed itself")?;
    cluster.shutdown();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ioredis_ready_check_pipeline_multi_expiry_scan_stream() -> Result<()> {
    if !program_available("node", "--version")
        || !compat_dir().join("node_modules/ioredis").exists()
    {
        println!("SKIPPED: node or ioredis is not installed (cd integration/compat && npm install ioredis)");
        return Ok(());
    }
    let (cluster, addr) = cluster().await?;
    let mut c = Command::new("node");
    c.current_dir(compat_dir())
        .arg("ioredis_compat.js")
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string());
    let out = run(c, "ioredis compat script")?;
    println!("{out}");
    assert!(out.contains("all checks passed"));
    cluster.shutdown();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_crate_resp2_and_resp3() -> Result<()> {
    let (cluster, addr) = cluster().await?;
    for (protocol, url) in [
        ("resp2", format!("redis://{addr}/")),
        ("resp3", format!("redis://{addr}/?protocol=resp3")),
    ] {
        let client = redis::Client::open(url.as_str())?;
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .with_context(|| format!("{protocol} connect"))?;
        let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await?;
        let mut pipe = redis::pipe();
        for i in 0..50 {
            pipe.cmd("SET").arg(format!("k{i}")).arg(i).ignore();
        }
        pipe.cmd("GET").arg("k7");
        let (seven,): (String,) = pipe.query_async(&mut conn).await?;
        assert_eq!(seven, "7", "{protocol} pipeline");
        let (a, b): (i64, String) = redis::pipe()
            .atomic()
            .cmd("INCR")
            .arg("n")
            .cmd("SET")
            .arg("s")
            .arg("v")
            .ignore()
            .cmd("GET")
            .arg("s")
            .query_async(&mut conn)
            .await?;
        assert_eq!((a, b.as_str()), (1, "v"), "{protocol} MULTI/EXEC");
        let _: () = redis::cmd("SET")
            .arg("e")
            .arg("v")
            .arg("EX")
            .arg(100)
            .query_async(&mut conn)
            .await?;
        let ttl: i64 = redis::cmd("TTL").arg("e").query_async(&mut conn).await?;
        assert!((99..=100).contains(&ttl), "{protocol} ttl {ttl}");
        let mut cursor = "0".to_string();
        let mut seen = std::collections::BTreeSet::new();
        loop {
            let (next, keys): (String, Vec<String>) = redis::cmd("SCAN")
                .arg(&cursor)
                .arg("MATCH")
                .arg("k*")
                .arg("COUNT")
                .arg(7)
                .query_async(&mut conn)
                .await?;
            seen.extend(keys);
            if next == "0" {
                break;
            }
            cursor = next;
        }
        assert_eq!(seen.len(), 50, "{protocol} SCAN");
        let _: () = redis::cmd("HSET")
            .arg("h")
            .arg("f")
            .arg("1")
            .query_async(&mut conn)
            .await?;
        let all: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
            .arg("h")
            .query_async(&mut conn)
            .await?;
        assert_eq!(
            all.get("f").map(String::as_str),
            Some("1"),
            "{protocol} HGETALL"
        );
        let err = redis::cmd("GET")
            .arg("h")
            .query_async::<String>(&mut conn)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("WRONGTYPE"), "{protocol}: {err}");
        // Redis 7: HRANDFIELD … WITHVALUES is flat in RESP2 and an array of
        // [field, value] pairs in RESP3.
        let _: () = redis::cmd("HSET")
            .arg("h")
            .arg("g")
            .arg("2")
            .query_async(&mut conn)
            .await?;
        let pairs: redis::Value = redis::cmd("HRANDFIELD")
            .arg("h")
            .arg(-3)
            .arg("WITHVALUES")
            .query_async(&mut conn)
            .await?;
        let redis::Value::Array(items) = &pairs else {
            bail!("{protocol} HRANDFIELD WITHVALUES: not an array: {pairs:?}");
        };
        if protocol == "resp3" {
            assert_eq!(items.len(), 3, "{protocol}: {pairs:?}");
            assert!(
                items
                    .iter()
                    .all(|p| matches!(p, redis::Value::Array(fv) if fv.len() == 2)),
                "{protocol}: {pairs:?}"
            );
        } else {
            assert_eq!(items.len(), 6, "{protocol}: {pairs:?}");
            assert!(
                items
                    .iter()
                    .all(|p| matches!(p, redis::Value::BulkString(_))),
                "{protocol}: {pairs:?}"
            );
        }
    }
    cluster.shutdown();
    Ok(())
}
