//! Redis's own observability, as Redis tooling reads it, against a 3-node
//! cluster's leader:
//!
//! - Debian's `prometheus-redis-exporter` scrapes the node after a known
//!   workload: no scrape error, and the command, memory, keyspace,
//!   replication, slow log and latency series present with plausible values;
//! - `redis-cli --stat`, `--bigkeys`, `--memkeys`, `--latency-history` and
//!   `MONITOR` run against it (each bounded in time) and show the workload;
//! - `INFO everything` field names and value types compared with a real
//!   redis-server 7.0 (names and types, not values): every Redis field dkv
//!   lacks is listed in [`LACKING`] with the reason, every field dkv adds in
//!   [`DKV_ONLY`].
//!
//! A missing tool skips its test with a message (a failure under CI, where
//! .ci/run installs it). No assertion depends on how long anything takes:
//! the slow command is `DEBUG SLEEP`, whose duration is a lower bound.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use dkv_integration::external::tool_missing;
use dkv_integration::redis_server::start_redis;
use dkv_integration::{program_available, Cluster, RawConn, Reply};

/// The slow command of the workload: `DEBUG SLEEP` this long.
const SLOW_SECONDS: f64 = 0.05;

/// Sends `args` and returns the reply, failing on an error reply.
async fn ok(conn: &mut RawConn, args: &[&str]) -> Result<Reply> {
    let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    let reply = conn.command(&bytes).await?;
    if let Reply::Error(text) = &reply {
        bail!("{args:?} answered -{text}");
    }
    Ok(reply)
}

/// The known workload: 100 SETs, 60 GET hits, 20 GET misses, 5 lists, one
/// big hash, one `DEBUG SLEEP` (slow log and latency monitor on).
async fn workload(conn: &mut RawConn) -> Result<()> {
    ok(conn, &["CONFIG", "SET", "latency-monitor-threshold", "10"]).await?;
    ok(conn, &["CONFIG", "SET", "slowlog-log-slower-than", "20000"]).await?;
    for i in 0..100 {
        ok(conn, &["SET", &format!("key:{i}"), &"x".repeat(i + 1)]).await?;
    }
    for i in 0..60 {
        ok(conn, &["GET", &format!("key:{i}")]).await?;
    }
    for i in 0..20 {
        ok(conn, &["GET", &format!("missing:{i}")]).await?;
    }
    for i in 0..5 {
        ok(conn, &["RPUSH", &format!("list:{i}"), "a", "b", "c"]).await?;
    }
    let mut hset = vec!["HSET".to_string(), "big:hash".to_string()];
    for i in 0..200 {
        hset.push(format!("field{i}"));
        hset.push("v".repeat(50));
    }
    let hset: Vec<&str> = hset.iter().map(String::as_str).collect();
    ok(conn, &hset).await?;
    ok(conn, &["DEBUG", "SLEEP", &SLOW_SECONDS.to_string()]).await?;
    Ok(())
}

/// A free loopback port.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Runs `program args` for `run_for`, then stops it (SIGKILL) and returns
/// what it printed; at most `run_for` + 10 s in all. Its stdout is line
/// buffered (`stdbuf -oL`), so what it printed before the kill is not lost
/// in a stdio buffer.
async fn run_for(program: &str, args: &[&str], run_for: Duration) -> Result<String> {
    let mut command = std::process::Command::new("stdbuf");
    command.arg("-oL").arg(program).args(args);
    dkv_integration::process::die_with_parent(&mut command);
    let mut command = tokio::process::Command::from(command);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .with_context(|| format!("spawn {program}"))?;
    if tokio::time::timeout(run_for, child.wait()).await.is_err() {
        child.start_kill().context("kill")?;
    }
    let output = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .with_context(|| format!("{program} did not stop"))??;
    Ok(format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

/// Prometheus text: `name{labels}` → value (comments skipped).
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_exporter_scrapes_a_node_after_a_known_workload() -> Result<()> {
    let exporter = "prometheus-redis-exporter";
    if !program_available(exporter, "-version") {
        return tool_missing(
            "prometheus-redis-exporter is not installed (apt-get install prometheus-redis-exporter)",
        );
    }
    let mut cluster = Cluster::start(3).await?;
    let leader = cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let addr = cluster.resp_addr(leader);
    let mut conn = RawConn::connect(addr).await?;
    workload(&mut conn).await?;

    let port = free_port()?;
    let listen = format!("127.0.0.1:{port}");
    let mut command = std::process::Command::new(exporter);
    command.args([
        "-redis.addr",
        &format!("redis://{addr}"),
        "-web.listen-address",
        &listen,
    ]);
    dkv_integration::process::die_with_parent(&mut command);
    let mut child = tokio::process::Command::from(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("spawn the exporter")?;
    let metrics_addr: SocketAddr = listen.parse()?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let text = loop {
        match dkv_integration::http::get(metrics_addr, "/metrics", Duration::from_secs(10)).await {
            Ok(response) if response.status == 200 => break response.text(),
            _ if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(response) => bail!("the exporter answered {}", response.status),
            Err(error) => return Err(error.context("the exporter never answered")),
        }
    };
    child.start_kill().context("stop the exporter")?;
    let log = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .context("the exporter did not stop")??;
    let log = String::from_utf8_lossy(&log.stderr).into_owned();
    let metrics = parse_metrics(&text);
    let value = |series: &str| -> f64 {
        *metrics
            .get(series)
            .unwrap_or_else(|| panic!("{series} missing from the scrape:\n{text}"))
    };
    println!(
        "exporter: {} series; redis_memory_used_bytes={} used_cpu={}",
        metrics.len(),
        value("redis_memory_used_bytes"),
        metrics
            .get("redis_cpu_user_seconds_total")
            .copied()
            .unwrap_or(-1.0)
    );
    assert!(
        !log.contains("level=error"),
        "the exporter logged errors:\n{log}"
    );
    assert_eq!(value("redis_up"), 1.0);
    assert_eq!(
        value("redis_exporter_last_scrape_error{err=\"\"}"),
        0.0,
        "{text}"
    );
    assert!(value("redis_commands_total{cmd=\"set\"}") >= 100.0);
    assert!(value("redis_commands_total{cmd=\"get\"}") >= 80.0);
    assert!(value("redis_commands_total{cmd=\"config|set\"}") >= 2.0);
    assert!(value("redis_commands_duration_seconds_total{cmd=\"set\"}") > 0.0);
    assert!(value("redis_commands_duration_seconds_total{cmd=\"debug\"}") >= SLOW_SECONDS);
    assert!(value("redis_commands_processed_total") >= 190.0);
    // The live heap of a running server holding data: more than 100 kB,
    // less than the machine.
    let used = value("redis_memory_used_bytes");
    assert!(used > 1e5 && used < 64e9, "redis_memory_used_bytes={used}");
    assert!(value("redis_keyspace_hits_total") >= 60.0);
    assert!(value("redis_keyspace_misses_total") >= 20.0);
    assert_eq!(value("redis_connected_slaves"), 2.0);
    assert_eq!(value("redis_db_keys{db=\"db0\"}"), 106.0);
    assert!(value("redis_slowlog_length") >= 1.0);
    assert!(value("redis_last_slow_execution_duration_seconds") >= SLOW_SECONDS);
    assert!(value("redis_latency_spike_duration_seconds{event_name=\"command\"}") >= SLOW_SECONDS);
    assert!(metrics
        .keys()
        .any(|k| k.starts_with("redis_latency_spike_last{event_name=\"command\"")));
    assert!(
        metrics
            .keys()
            .any(|k| k.starts_with("redis_latency_percentiles_usec") && k.contains("cmd=\"set\"")),
        "no latency percentiles series:\n{text}"
    );
    cluster.shutdown();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_tools_and_monitor_show_the_workload() -> Result<()> {
    if !program_available("redis-cli", "--version") {
        return tool_missing("redis-cli is not installed (apt-get install redis-tools)");
    }
    let mut cluster = Cluster::start(3).await?;
    let leader = cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let addr = cluster.resp_addr(leader);
    let (host, port) = (addr.ip().to_string(), addr.port().to_string());
    let cli = |extra: &[&str]| -> Vec<String> {
        let mut args = vec![
            "-h".to_string(),
            host.clone(),
            "-p".to_string(),
            port.clone(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    let strs = |v: &[String]| -> Vec<String> { v.to_vec() };

    // MONITOR runs while the workload does.
    let monitor_args = cli(&["monitor"]);
    let monitor = tokio::spawn(async move {
        let args: Vec<&str> = monitor_args.iter().map(String::as_str).collect();
        run_for("redis-cli", &args, Duration::from_secs(4)).await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut conn = RawConn::connect(addr).await?;
    workload(&mut conn).await?;
    let watched = monitor.await??;
    println!("MONITOR printed {} lines", watched.lines().count());
    assert!(watched.starts_with("OK"), "{watched}");
    assert!(
        watched.contains("\"SET\" \"key:0\" \"x\""),
        "MONITOR missed the workload:\n{watched}"
    );
    assert!(watched.contains("\"GET\" \"missing:19\""), "{watched}");
    assert!(
        watched
            .lines()
            .filter(|l| l.contains("\"SET\" \"key:"))
            .count()
            == 100,
        "{watched}"
    );

    let args = strs(&cli(&["--stat", "-i", "0.5"]));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let stat = run_for("redis-cli", &args, Duration::from_secs(2)).await?;
    println!("--stat:\n{stat}");
    // The header, then lines of: keys mem clients blocked requests connections.
    assert!(stat.contains("keys") && stat.contains("requests"), "{stat}");
    assert!(
        stat.lines().any(|l| l.trim_start().starts_with("106 ")),
        "--stat does not show the 106 keys:\n{stat}"
    );

    let args = strs(&cli(&["--bigkeys"]));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let big = run_for("redis-cli", &args, Duration::from_secs(20)).await?;
    println!("--bigkeys:\n{big}");
    assert!(
        big.contains("hash found '\"big:hash\"' has 200 fields"),
        "{big}"
    );
    assert!(big.contains("Sampled 106 keys"), "{big}");
    assert!(
        big.contains("string found '\"key:99\"' has 100 bytes"),
        "{big}"
    );

    let args = strs(&cli(&["--memkeys"]));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mem = run_for("redis-cli", &args, Duration::from_secs(20)).await?;
    println!("--memkeys:\n{mem}");
    assert!(mem.contains("big:hash"), "{mem}");
    assert!(!mem.to_lowercase().contains("error"), "{mem}");

    let args = strs(&cli(&["--latency-history", "-i", "1"]));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let latency = run_for("redis-cli", &args, Duration::from_secs(3)).await?;
    println!("--latency-history:\n{latency}");
    // Not on a terminal, redis-cli prints `min max avg samples` per sample
    // and ` -- 1.00 seconds range` at the end of each interval.
    let ranges = latency.matches("seconds range").count();
    assert!(ranges >= 1, "{latency}");
    let rows: Vec<Vec<f64>> = latency
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("seconds range"))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect()
        })
        .collect();
    // The kill may cut the last line short.
    let whole = &rows[..rows.len().saturating_sub(1)];
    assert!(
        !whole.is_empty() && whole.iter().all(|r| r.len() == 4),
        "{latency}"
    );
    assert!(whole.iter().any(|r| r[3] >= 1.0), "{latency}");
    cluster.shutdown();
    Ok(())
}

/// Redis 7.0 INFO fields dkv does not have, and why.
const LACKING: &[(&str, &str)] = &[
    (
        "redis_git_sha1",
        "not built from Redis's git tree (dkv_version says which dkv)",
    ),
    ("redis_git_dirty", "as redis_git_sha1"),
    ("redis_build_id", "as redis_git_sha1"),
    ("atomicvar_api", "a C build detail"),
    ("gcc_version", "built by rustc"),
    ("hz", "no serverCron: timers are Raft ticks (raft.tick_ms)"),
    ("configured_hz", "as hz"),
    (
        "lru_clock",
        "the LRU clock is the replicated now, per entry",
    ),
    (
        "client_recent_max_input_buffer",
        "not tracked; CLIENT LIST shows each client",
    ),
    (
        "client_recent_max_output_buffer",
        "as client_recent_max_input_buffer",
    ),
    (
        "used_memory_overhead",
        "the allocator's split of overhead and data is not known",
    ),
    ("used_memory_startup", "as used_memory_overhead"),
    (
        "used_memory_lua",
        "script VMs are per call, not one long-lived VM",
    ),
    ("used_memory_vm_eval", "as used_memory_lua"),
    ("used_memory_lua_human", "as used_memory_lua"),
    (
        "used_memory_scripts_eval",
        "scripts are counted in used_memory_dataset",
    ),
    (
        "number_of_cached_scripts",
        "SCRIPT and FUNCTION are another helper's area",
    ),
    ("number_of_functions", "as number_of_cached_scripts"),
    ("number_of_libraries", "as number_of_cached_scripts"),
    ("used_memory_vm_functions", "as used_memory_lua"),
    ("used_memory_vm_total", "as used_memory_lua"),
    ("used_memory_vm_total_human", "as used_memory_lua"),
    ("used_memory_functions", "as used_memory_scripts_eval"),
    ("used_memory_scripts", "as used_memory_scripts_eval"),
    ("used_memory_scripts_human", "as used_memory_scripts_eval"),
    (
        "rss_overhead_ratio",
        "the resident set is not split into allocator and other pages",
    ),
    ("rss_overhead_bytes", "as rss_overhead_ratio"),
    (
        "mem_replication_backlog",
        "no backlog: followers read the Raft log",
    ),
    (
        "mem_total_replication_buffers",
        "as mem_replication_backlog",
    ),
    ("mem_clients_slaves", "followers are not clients"),
    (
        "mem_clients_normal",
        "maxmemory-clients accounts clients; not summed here",
    ),
    ("mem_cluster_links", "no Redis Cluster bus"),
    (
        "mem_aof_buffer",
        "the WAL is written in group commits, not buffered",
    ),
    ("active_defrag_running", "no active defragmentation"),
    ("lazyfreed_objects", "no lazy free"),
    (
        "current_cow_peak",
        "no fork: snapshots are written without copy-on-write",
    ),
    ("current_cow_size", "as current_cow_peak"),
    ("current_cow_size_age", "as current_cow_peak"),
    ("current_fork_perc", "as current_cow_peak"),
    (
        "current_save_keys_processed",
        "snapshot progress is not tracked",
    ),
    ("current_save_keys_total", "as current_save_keys_processed"),
    (
        "rdb_saves",
        "snapshots are counted in dkv_snapshot_duration_seconds on /metrics",
    ),
    ("rdb_last_cow_size", "as current_cow_peak"),
    (
        "rdb_last_load_keys_expired",
        "recovery replays the WAL; not counted",
    ),
    ("rdb_last_load_keys_loaded", "as rdb_last_load_keys_expired"),
    (
        "aof_rewrites",
        "no AOF rewrite: the log is compacted by snapshots",
    ),
    ("aof_rewrites_consecutive_failures", "as aof_rewrites"),
    ("aof_last_cow_size", "as current_cow_peak"),
    ("module_fork_in_progress", "no modules"),
    ("module_fork_last_cow_size", "no modules"),
    (
        "total_net_repl_input_bytes",
        "replication is peer RPC on the HTTP port, not counted here",
    ),
    (
        "total_net_repl_output_bytes",
        "as total_net_repl_input_bytes",
    ),
    (
        "instantaneous_input_repl_kbps",
        "as total_net_repl_input_bytes",
    ),
    (
        "instantaneous_output_repl_kbps",
        "as total_net_repl_input_bytes",
    ),
    ("sync_full", "no PSYNC: InstallSnapshot is Raft's full sync"),
    ("sync_partial_ok", "as sync_full"),
    ("sync_partial_err", "as sync_full"),
    (
        "expired_stale_perc",
        "expiry is proposed by the leader, not sampled",
    ),
    ("expired_time_cap_reached_count", "as expired_stale_perc"),
    ("expire_cycle_cpu_milliseconds", "as expired_stale_perc"),
    (
        "total_eviction_exceeded_time",
        "eviction is proposed by the leader; not timed",
    ),
    (
        "current_eviction_exceeded_time",
        "as total_eviction_exceeded_time",
    ),
    ("latest_fork_usec", "no fork"),
    ("migrate_cached_sockets", "no MIGRATE"),
    (
        "slave_expires_tracked_keys",
        "followers apply the leader's expiry",
    ),
    ("active_defrag_hits", "no active defragmentation"),
    ("active_defrag_misses", "as active_defrag_hits"),
    ("active_defrag_key_hits", "as active_defrag_hits"),
    ("active_defrag_key_misses", "as active_defrag_hits"),
    ("total_active_defrag_time", "as active_defrag_hits"),
    ("current_active_defrag_time", "as active_defrag_hits"),
    ("dump_payload_sanitizations", "not counted"),
    (
        "total_reads_processed",
        "reads are per batch of a connection, not counted",
    ),
    ("total_writes_processed", "as total_reads_processed"),
    (
        "io_threaded_reads_processed",
        "no I/O threads: every connection is a task",
    ),
    (
        "io_threaded_writes_processed",
        "as io_threaded_reads_processed",
    ),
    ("reply_buffer_shrinks", "not counted"),
    ("reply_buffer_expands", "not counted"),
    (
        "master_replid2",
        "no replication id history: the Raft term plays that part",
    ),
    (
        "repl_backlog_active",
        "no backlog: followers read the Raft log",
    ),
    ("repl_backlog_size", "as repl_backlog_active"),
    ("repl_backlog_first_byte_offset", "as repl_backlog_active"),
    ("repl_backlog_histlen", "as repl_backlog_active"),
    (
        "used_cpu_sys_main_thread",
        "no main thread: tokio's workers share the work",
    ),
    ("used_cpu_user_main_thread", "as used_cpu_sys_main_thread"),
];

/// Fields dkv adds (dkv's own facts; Redis tools ignore unknown fields).
const DKV_ONLY: &[&str] = &[
    "dkv_version",
    "http_addr",
    "maxmemory_used_memory",
    "client_query_buffer_limit_disconnections",
    "client_output_buffer_limit_disconnections",
    "rdb_snapshot_index",
    "aof_last_log_index",
    // Redis has slaveN lines too, once replicas are attached (the Redis of
    // this test has none).
    "slave*",
];

/// A value's type as a tool parsing INFO sees it.
fn kind(value: &str) -> &'static str {
    if value.parse::<i64>().is_ok() {
        "integer"
    } else if value.parse::<f64>().is_ok() {
        "float"
    } else if value
        .strip_suffix('%')
        .is_some_and(|v| v.parse::<f64>().is_ok())
    {
        "percent"
    } else if value.contains('=') {
        "key=value list"
    } else {
        "text"
    }
}

/// Fields per section (`# Title` → name → value); the per-command and
/// per-database fields are reduced to their shape (`cmdstat_*`).
fn sections(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(title) = line.strip_prefix("# ") {
            current = title.to_string();
            out.entry(current.clone()).or_default();
        } else if let Some((name, value)) = line.split_once(':') {
            let shape = [
                "cmdstat_",
                "errorstat_",
                "latency_percentiles_usec_",
                "slave",
            ]
            .iter()
            .find(|p| {
                name.starts_with(*p) && name != "slave_read_only" && !name.starts_with("slave_")
            })
            .map_or(name.to_string(), |p| format!("{p}*"));
            let shape = if current == "Keyspace" {
                "db*".to_string()
            } else {
                shape
            };
            // The value's keys (`calls=..,usec=..`) are part of the shape.
            let value = if value.contains('=') {
                value
                    .split(',')
                    .map(|kv| kv.split_once('=').map_or(kv, |(k, _)| k))
                    .collect::<Vec<_>>()
                    .join(",")
                    + "="
            } else {
                value.to_string()
            };
            out.entry(current.clone()).or_default().insert(shape, value);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_fields_match_redis_7_in_name_and_type() -> Result<()> {
    if !program_available("redis-server", "--version") {
        return tool_missing("redis-server is not installed (apt-get install redis-server)");
    }
    let (_redis, mut redis) = start_redis().await?;
    let mut cluster = Cluster::start(3).await?;
    let leader = cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let mut dkv = RawConn::connect(cluster.resp_addr(leader)).await?;
    // The same small workload on both, with one error, so every dynamic
    // section has a line.
    for conn in [&mut redis, &mut dkv] {
        ok(conn, &["SET", "a", "1"]).await?;
        ok(conn, &["GET", "a"]).await?;
        let _ = conn.command(&[b"GET"]).await?;
    }
    let info = |reply: Reply| -> Result<String> {
        match reply {
            Reply::Bulk(Some(text)) => Ok(String::from_utf8_lossy(&text).into_owned()),
            other => bail!("INFO answered {other:?}"),
        }
    };
    let theirs = sections(&info(redis.command(&[b"INFO", b"everything"]).await?)?);
    let ours = sections(&info(dkv.command(&[b"INFO", b"everything"]).await?)?);
    let mut problems = Vec::new();
    let lacking = |name: &str| LACKING.iter().any(|(n, _)| *n == name);
    for (section, fields) in &theirs {
        let Some(mine) = ours.get(section) else {
            problems.push(format!("section # {section} missing"));
            continue;
        };
        for (name, value) in fields {
            match mine.get(name) {
                None if lacking(name) => {}
                None => problems.push(format!("{section}: {name} missing (Redis: {value})")),
                Some(_) if lacking(name) => problems.push(format!(
                    "{section}: {name} is present but listed as lacking"
                )),
                Some(mine) if kind(mine) != kind(value) => problems.push(format!(
                    "{section}: {name} is {} ({mine}), Redis's is {} ({value})",
                    kind(mine),
                    kind(value)
                )),
                Some(mine) if kind(value) == "key=value list" && mine != value => problems.push(
                    format!("{section}: {name} has keys {mine}, Redis's {value}"),
                ),
                Some(_) => {}
            }
        }
        for name in mine.keys() {
            if !fields.contains_key(name) && !DKV_ONLY.contains(&name.as_str()) {
                problems.push(format!(
                    "{section}: {name} is dkv's own but not in DKV_ONLY"
                ));
            }
        }
    }
    for section in ours.keys() {
        if !theirs.contains_key(section) && section != "Raft" {
            problems.push(format!("section # {section} is dkv's own"));
        }
    }
    println!(
        "INFO everything: Redis {} fields, dkv {} fields ({} deliberately lacking)",
        theirs.values().map(BTreeMap::len).sum::<usize>(),
        ours.values().map(BTreeMap::len).sum::<usize>(),
        LACKING.len()
    );
    assert!(
        problems.is_empty(),
        "INFO differs from Redis 7.0:\n{}",
        problems.join("\n")
    );
    cluster.shutdown();
    Ok(())
}

/// One INFO field, as text (None: not present).
async fn info_field(conn: &mut RawConn, section: &str, name: &str) -> Result<Option<String>> {
    let text = match ok(conn, &["INFO", section]).await? {
        Reply::Bulk(Some(text)) => String::from_utf8_lossy(&text).into_owned(),
        other => bail!("INFO answered {other:?}"),
    };
    Ok(text.lines().find_map(|line| {
        line.split_once(':')
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    }))
}

/// Polls `name` of `conn`'s INFO `section` until it reads `want` (bounded).
async fn wait_field(conn: &mut RawConn, section: &str, name: &str, want: &str) -> Result<()> {
    let mut seen = None;
    for _ in 0..200 {
        seen = info_field(conn, section, name).await?;
        if seen.as_deref() == Some(want) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("INFO {name} reads {seen:?}, expected {want}")
}

/// `blocked_clients` counts this node's clients waiting in a blocking pop;
/// `pubsub_channels`, `pubsub_patterns` and `pubsubshard_channels` count the
/// cluster's subscriptions (the replicated registry), so every node reads
/// the same numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_counts_blocked_clients_and_the_cluster_subscriptions() -> Result<()> {
    let mut cluster = Cluster::start(3).await?;
    let leader = cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let mut subscriber = RawConn::connect(cluster.resp_addr(follower)).await?;
    ok(&mut subscriber, &["SUBSCRIBE", "news", "sport"]).await?;
    subscriber.read_reply(Duration::from_secs(10)).await?; // the second confirmation
    let mut patterns = RawConn::connect(cluster.resp_addr(other)).await?;
    ok(&mut patterns, &["PSUBSCRIBE", "log.*"]).await?;
    let mut shard = RawConn::connect(cluster.resp_addr(leader)).await?;
    ok(&mut shard, &["SSUBSCRIBE", "orders"]).await?;
    let mut blocked = RawConn::connect(cluster.resp_addr(follower)).await?;
    blocked
        .send(&dkv_integration::resp::encode(&[b"BLPOP", b"jobs", b"0"]))
        .await?;

    let mut views = Vec::new();
    for i in 0..3 {
        views.push(RawConn::connect(cluster.resp_addr(i)).await?);
    }
    for view in &mut views {
        wait_field(view, "stats", "pubsub_channels", "2").await?;
        wait_field(view, "stats", "pubsub_patterns", "1").await?;
        wait_field(view, "stats", "pubsubshard_channels", "1").await?;
    }
    wait_field(&mut views[follower], "clients", "blocked_clients", "1").await?;
    assert_eq!(
        info_field(&mut views[leader], "clients", "blocked_clients")
            .await?
            .as_deref(),
        Some("0"),
        "blocked_clients is the node's own"
    );

    // Served and unsubscribed: the counts fall back on every node.
    ok(&mut views[leader], &["RPUSH", "jobs", "x"]).await?;
    blocked.read_reply(Duration::from_secs(10)).await?;
    wait_field(&mut views[follower], "clients", "blocked_clients", "0").await?;
    subscriber.close().await;
    for view in &mut views {
        wait_field(view, "stats", "pubsub_channels", "0").await?;
        wait_field(view, "stats", "pubsub_patterns", "1").await?;
    }
    cluster.shutdown();
    Ok(())
}

/// Every node's connections, as `dkv-cli clients` lists them: each node's
/// CLIENT LIST from its operator port (`/admin/clients`, admin token
/// required), each line tagged with its node; a named client on each node
/// appears once, under its own node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dkv_cli_clients_lists_every_nodes_connections() -> Result<()> {
    let cli = dkv_integration::cli_binary()?;
    let mut cluster = Cluster::start(3).await?;
    cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let mut named = Vec::new();
    for i in 0..3 {
        let mut conn = RawConn::connect(cluster.resp_addr(i)).await?;
        ok(&mut conn, &["CLIENT", "SETNAME", &format!("app-on-{i}")]).await?;
        named.push(conn);
    }
    let endpoints: Vec<String> = (0..3)
        .map(|i| cluster.operator_addr(i).to_string())
        .collect();
    let run = |token: Option<std::path::PathBuf>| {
        let mut command = tokio::process::Command::new(&cli);
        command
            .arg("clients")
            .arg("--endpoints")
            .arg(endpoints.join(","))
            .arg("--admin-token-file")
            .arg(token.unwrap_or_else(|| "/nonexistent/admin-token".into()))
            .kill_on_drop(true)
            .output()
    };
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        run(Some(cluster.admin_token_path().to_path_buf())),
    )
    .await
    .context("dkv-cli clients did not finish within 20 s")??;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "dkv-cli clients: {} {text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for i in 0..3 {
        let id = cluster.config(i).id;
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(&format!(" name=app-on-{i} ")))
            .collect();
        assert_eq!(lines.len(), 1, "app-on-{i} once in:\n{text}");
        assert!(
            lines[0].starts_with("id=") && lines[0].ends_with(&format!(" node={id}")),
            "{}",
            lines[0]
        );
    }
    // Without the token, nothing is listed.
    let refused = tokio::time::timeout(Duration::from_secs(20), run(None))
        .await
        .context("dkv-cli clients did not finish within 20 s")??;
    assert!(!refused.status.success());
    assert!(refused.stdout.is_empty());
    let http = cluster.http_get(0, "/admin/clients").await?;
    assert_eq!(http.status, 401, "no token: refused");
    drop(named);
    cluster.shutdown();
    Ok(())
}

/// `used_memory` is the live heap, as Redis's: it grows by at least the
/// bytes a load holds, falls back once they are deleted, and stays under
/// the resident set (the allocator's committed pages are
/// `allocator_active`, which a freed load leaves behind).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn used_memory_counts_live_bytes_not_committed_pages() -> Result<()> {
    // Snapshots every few entries, so the log stops holding the values soon
    // after they are deleted.
    let mut cluster = Cluster::start_with(1, |config| {
        config.raft_extra =
            "snapshot_every_entries: 10, snapshot_log_growth_percent: 0".to_string();
    })
    .await?;
    let leader = cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let mut conn = RawConn::connect(cluster.resp_addr(leader)).await?;
    let used = |text: Option<String>| -> Result<u64> {
        text.ok_or_else(|| anyhow::anyhow!("no used_memory"))?
            .parse()
            .map_err(Into::into)
    };
    let before = used(info_field(&mut conn, "memory", "used_memory").await?)?;
    // 2,000 values of 16 KiB: 32 MiB the keyspace must hold.
    let value = "x".repeat(16 << 10);
    for chunk in 0..20 {
        let mut args = vec!["MSET".to_string()];
        for i in 0..100 {
            args.push(format!("big:{}", chunk * 100 + i));
            args.push(value.clone());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&mut conn, &args).await?;
    }
    // One INFO reply, so the figures are of one moment.
    let memory = match ok(&mut conn, &["INFO", "memory"]).await? {
        Reply::Bulk(Some(text)) => String::from_utf8_lossy(&text).into_owned(),
        other => bail!("INFO answered {other:?}"),
    };
    let figure = |name: &str| {
        used(memory.lines().find_map(|line| {
            line.split_once(':')
                .filter(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }))
    };
    let loaded = figure("used_memory")?;
    assert!(
        loaded >= before + (32 << 20),
        "used_memory {before} -> {loaded} after loading 32 MiB"
    );
    let rss = figure("used_memory_rss")?;
    assert!(
        loaded < rss,
        "used_memory {loaded} over the resident set {rss}"
    );
    assert_eq!(figure("allocator_allocated")?, loaded);
    // FLUSHALL frees the values (off the Raft loop); the log holds their
    // payloads until a snapshot compacts it, which small writes bring on.
    ok(&mut conn, &["FLUSHALL"]).await?;
    let mut now = loaded;
    for round in 0..200 {
        ok(&mut conn, &["SET", "small", &round.to_string()]).await?;
        now = used(info_field(&mut conn, "memory", "used_memory").await?)?;
        if now < before + (8 << 20) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        now < before + (8 << 20),
        "used_memory {before} -> {loaded} -> {now} after FLUSHALL and a snapshot"
    );
    cluster.shutdown();
    Ok(())
}
