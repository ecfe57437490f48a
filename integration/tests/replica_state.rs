//! Replicas hold identical data under TTL churn and eviction.
//!
//! Three real `dkv-server` processes get a low `maxmemory` with an eviction
//! policy; several clients (on every node, in two databases) write keys with
//! short and mixed TTLs (EX / PX / SETEX / GETEX / EXPIRE / PEXPIRE / PERSIST,
//! hashes, counters, MULTI/EXEC) for a bounded time. Active expiry and eviction
//! are proposed by the leader and applied as log entries, so once the cluster
//! is quiet (every node at the same applied index), every node must report the
//! same `DEBUG DIGEST` (Redis's dataset digest) and `DEBUG STATE-DIGEST` (all
//! replicated state: TTL deadlines, counters, stats, config). Then the whole
//! cluster is stopped and restarted: the state rebuilt from each WAL must give
//! the same digests again.
//!
//! The test guards against passing vacuously: the digest differs from an
//! empty dataset's, keys expired and were evicted (INFO `expired_keys` and
//! `evicted_keys` > 0, and equal on every node), and keys both with and
//! without a TTL survive.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use dkv_integration::workload::Rng;
use dkv_integration::Cluster;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How long the writers run.
const WRITE_FOR: Duration = Duration::from_secs(5);
/// Short TTLs are at most this long; long ones at least [`LONG_TTL_S`].
const SHORT_TTL_MAX_MS: u64 = 2_500;
/// Long TTLs: far beyond the test, so they never expire during it (and no
/// housekeeping entry changes the state across the restart).
const LONG_TTL_S: u64 = 3_600;
/// Writers per node.
const WRITERS_PER_NODE: usize = 2;
/// The replicated memory limit (dkv's deterministic estimate: key + value +
/// 64 bytes per key, + 32 per hash field). The writers store far more.
const MAXMEMORY_BYTES: u64 = 120_000;
/// Distinct key names per writer.
const KEYS_PER_WRITER: u64 = 400;
/// Bound on the cluster becoming quiet with every node at one applied index.
const SETTLE_BUDGET: Duration = Duration::from_secs(60);
/// Bound on one command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(15);

async fn connect(addr: SocketAddr, db: u8) -> Result<MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://{addr}/{db}"))
        .with_context(|| format!("client for {addr}"))?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(COMMAND_TIMEOUT));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .with_context(|| format!("connect to {addr}"))
}

/// What one writer did.
#[derive(Default)]
struct Tally {
    ok: u64,
    errors: u64,
    first_error: Option<String>,
}

/// One writer: random commands on its own keys and a few shared ones, until
/// `until`. Error replies (an OOM, a WRONGTYPE on a shared key) are counted,
/// not fatal: the test is about replicas agreeing, whatever the outcome.
async fn writer(addr: SocketAddr, db: u8, id: usize, seed: u64, until: Instant) -> Result<Tally> {
    let mut conn = connect(addr, db).await?;
    let mut rng = Rng::new(seed);
    let mut tally = Tally::default();
    while Instant::now() < until {
        let key = if rng.below(10) == 0 {
            format!("shared:{}", rng.below(50))
        } else {
            format!("w{id}:{}", rng.below(KEYS_PER_WRITER))
        };
        let value = "v".repeat(8 + rng.below(300) as usize);
        let short_ms = 50 + rng.below(SHORT_TTL_MAX_MS - 50);
        let long_s = LONG_TTL_S + rng.below(1_000);
        let mut cmd = redis::cmd("SET");
        let pipe_or_cmd: Result<Value, redis::RedisError> = match rng.below(16) {
            0 | 1 => {
                cmd.arg(&key).arg(&value);
                cmd.query_async(&mut conn).await
            }
            2 | 3 => {
                cmd.arg(&key).arg(&value).arg("PX").arg(short_ms);
                cmd.query_async(&mut conn).await
            }
            4 => {
                cmd.arg(&key)
                    .arg(&value)
                    .arg("EX")
                    .arg(1 + short_ms / 1000)
                    .arg("NX");
                cmd.query_async(&mut conn).await
            }
            5 => {
                cmd.arg(&key).arg(&value).arg("EX").arg(long_s);
                cmd.query_async(&mut conn).await
            }
            6 => {
                redis::cmd("SETEX")
                    .arg(&key)
                    .arg(1 + short_ms / 1000)
                    .arg(&value)
                    .query_async(&mut conn)
                    .await
            }
            7 => {
                redis::cmd("PEXPIRE")
                    .arg(&key)
                    .arg(short_ms)
                    .query_async(&mut conn)
                    .await
            }
            8 => {
                redis::cmd("EXPIRE")
                    .arg(&key)
                    .arg(long_s)
                    .arg("NX")
                    .query_async(&mut conn)
                    .await
            }
            9 => redis::cmd("PERSIST").arg(&key).query_async(&mut conn).await,
            10 => {
                redis::cmd("GETEX")
                    .arg(&key)
                    .arg("PX")
                    .arg(short_ms)
                    .query_async(&mut conn)
                    .await
            }
            11 => {
                let hkey = format!("h{id}:{}", rng.below(KEYS_PER_WRITER / 4));
                redis::pipe()
                    .cmd("HSET")
                    .arg(&hkey)
                    .arg(format!("f{}", rng.below(20)))
                    .arg(&value)
                    .arg("n")
                    .arg(rng.below(1000))
                    .cmd("HINCRBY")
                    .arg(&hkey)
                    .arg("hits")
                    .arg(1)
                    .cmd("PEXPIRE")
                    .arg(&hkey)
                    .arg(if rng.below(3) == 0 {
                        long_s * 1000
                    } else {
                        short_ms
                    })
                    .query_async(&mut conn)
                    .await
            }
            12 => {
                redis::cmd("INCRBY")
                    .arg(format!("count{id}:{}", rng.below(20)))
                    .arg(rng.below(100))
                    .query_async(&mut conn)
                    .await
            }
            13 => redis::cmd("DEL").arg(&key).query_async(&mut conn).await,
            14 => {
                redis::pipe()
                    .atomic()
                    .cmd("SET")
                    .arg(&key)
                    .arg(&value)
                    .cmd("PEXPIRE")
                    .arg(&key)
                    .arg(short_ms)
                    .cmd("INCR")
                    .arg(format!("count{id}:tx"))
                    .query_async(&mut conn)
                    .await
            }
            _ => {
                redis::cmd("APPEND")
                    .arg(&key)
                    .arg("+")
                    .query_async(&mut conn)
                    .await
            }
        };
        match pipe_or_cmd {
            Ok(_) => tally.ok += 1,
            Err(e) if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() => {
                return Err(e).with_context(|| format!("writer {id} on {addr}"));
            }
            Err(e) => {
                tally.errors += 1;
                tally.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    Ok(tally)
}

/// One node's view of its own state.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NodeState {
    digest: String,
    state_digest: String,
    expired_keys: u64,
    evicted_keys: u64,
    keys: u64,
    keys_with_ttl: u64,
}

fn info_field(info: &str, name: &str) -> Result<u64> {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .with_context(|| format!("INFO has no {name}: {info}"))?
        .trim()
        .parse()
        .with_context(|| format!("INFO {name} is not a number"))
}

/// Keys and keys with a TTL over every database (INFO keyspace lines
/// `dbN:keys=K,expires=E,avg_ttl=T`).
fn keyspace_totals(info: &str) -> Result<(u64, u64)> {
    let mut totals = (0, 0);
    for line in info.lines().filter(|l| l.starts_with("db")) {
        let mut fields = line.split(':').nth(1).context("dbN: line")?.split(',');
        let mut take = |prefix: &str| -> Result<u64> {
            fields
                .next()
                .and_then(|f| f.strip_prefix(prefix))
                .with_context(|| format!("{prefix} in {line}"))?
                .trim()
                .parse()
                .with_context(|| format!("{prefix} in {line}"))
        };
        totals.0 += take("keys=")?;
        totals.1 += take("expires=")?;
    }
    Ok(totals)
}

async fn node_state(addr: SocketAddr) -> Result<NodeState> {
    let mut conn = connect(addr, 0).await?;
    let digest: String = redis::cmd("DEBUG")
        .arg("DIGEST")
        .query_async(&mut conn)
        .await
        .context("DEBUG DIGEST")?;
    let state_digest: String = redis::cmd("DEBUG")
        .arg("STATE-DIGEST")
        .query_async(&mut conn)
        .await
        .context("DEBUG STATE-DIGEST")?;
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .arg("keyspace")
        .query_async(&mut conn)
        .await
        .context("INFO")?;
    let (keys, keys_with_ttl) = keyspace_totals(&info)?;
    Ok(NodeState {
        digest,
        state_digest,
        expired_keys: info_field(&info, "expired_keys")?,
        evicted_keys: info_field(&info, "evicted_keys")?,
        keys,
        keys_with_ttl,
    })
}

async fn applied_indexes(cluster: &Cluster) -> Result<Vec<u64>> {
    let mut applied = Vec::new();
    for i in 0..cluster.len() {
        applied.push(cluster.status(i).await?.last_applied);
    }
    Ok(applied)
}

/// Waits until every node has applied the same index, that index holds still
/// for `quiet`, and reading every node's state does not move it; returns the
/// index and each node's state.
async fn settled_states(cluster: &Cluster, quiet: Duration) -> Result<(u64, Vec<NodeState>)> {
    let deadline = Instant::now() + SETTLE_BUDGET;
    let mut last = String::new();
    loop {
        if Instant::now() >= deadline {
            bail!("the cluster did not settle at one applied index within {SETTLE_BUDGET:?}; last: {last}");
        }
        let before = applied_indexes(cluster).await?;
        tokio::time::sleep(quiet).await;
        let again = applied_indexes(cluster).await?;
        if again != before || before.iter().any(|&a| a != before[0]) {
            last = format!("applied {before:?} then {again:?}");
            continue;
        }
        let mut states = Vec::new();
        for i in 0..cluster.len() {
            states.push(node_state(cluster.resp_addr(i)).await?);
        }
        let after = applied_indexes(cluster).await?;
        if after == before {
            return Ok((before[0], states));
        }
        last = format!("applied {before:?}, then {after:?} while reading the digests");
    }
}

fn ensure_identical(states: &[NodeState], when: &str) -> Result<()> {
    for (i, s) in states.iter().enumerate().skip(1) {
        ensure!(
            *s == states[0],
            "{when}: node {i} differs from node 0:\n  node 0: {:?}\n  node {i}: {s:?}",
            states[0]
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_hold_identical_state_under_ttls_and_eviction() -> Result<()> {
    let mut cluster = Cluster::start(3).await?;
    let leader = cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let zeros = "0".repeat(40);

    // Replicated configuration: one log entry, so every node enforces it.
    let mut admin = connect(cluster.resp_addr(leader), 0).await?;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(MAXMEMORY_BYTES)
        .arg("maxmemory-policy")
        .arg("allkeys-lru")
        .query_async(&mut admin)
        .await
        .context("CONFIG SET maxmemory")?;
    let empty = node_state(cluster.resp_addr(leader)).await?;
    ensure!(empty.digest == zeros, "empty dataset digest: {empty:?}");

    // Writers on every node (followers forward), in databases 0 and 1.
    let until = Instant::now() + WRITE_FOR;
    let mut tasks = JoinSet::new();
    for node in 0..cluster.len() {
        for w in 0..WRITERS_PER_NODE {
            let id = node * WRITERS_PER_NODE + w;
            let addr = cluster.resp_addr(node);
            tasks.spawn(writer(addr, (id % 2) as u8, id, 0x5EED + id as u64, until));
        }
    }
    let (mut ok, mut errors, mut first_error) = (0, 0, None);
    while let Some(joined) = tasks.join_next().await {
        let tally = joined.context("writer task panicked")??;
        ok += tally.ok;
        errors += tally.errors;
        first_error = first_error.or(tally.first_error);
    }
    eprintln!("workload: {ok} commands ok, {errors} error replies (first: {first_error:?})");
    ensure!(ok > 500, "too little load to mean anything: {ok} commands");

    // Every short TTL has passed: the state stops changing once active expiry
    // and eviction have caught up.
    tokio::time::sleep(Duration::from_millis(SHORT_TTL_MAX_MS + 500)).await;
    let (index, states) = settled_states(&cluster, Duration::from_secs(1)).await?;
    eprintln!("settled at applied index {index}: {:?}", states[0]);
    ensure_identical(&states, "after the workload")?;
    let s = &states[0];
    ensure!(
        s.digest != zeros && s.state_digest != zeros,
        "empty dataset: {s:?}"
    );
    ensure!(s.expired_keys > 0, "no key expired: {s:?}");
    ensure!(s.evicted_keys > 0, "no key was evicted: {s:?}");
    ensure!(
        s.keys > s.keys_with_ttl && s.keys_with_ttl > 0,
        "want keys with and without a TTL to survive: {s:?}"
    );

    // Stop the whole cluster; the state rebuilt from each WAL is the same.
    for i in 0..cluster.len() {
        cluster.stop(i).await?;
    }
    for i in 0..cluster.len() {
        cluster.restart(i).await?;
    }
    cluster.wait_for_leader(Duration::from_secs(30)).await?;
    let (index_after, restarted) = settled_states(&cluster, Duration::from_secs(1)).await?;
    eprintln!("after restart, settled at applied index {index_after}");
    ensure_identical(&restarted, "after restarting the cluster")?;
    ensure!(
        restarted[0] == states[0],
        "the state rebuilt from the WAL differs from the state before the stop:\n  before: {:?}\n  after:  {:?}",
        states[0],
        restarted[0]
    );
    cluster.shutdown();
    Ok(())
}
