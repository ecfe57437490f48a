//! The statistics as the connection loop records them, and the commands
//! that read them (INFO sections, SLOWLOG, LATENCY, CONFIG, MONITOR),
//! against the fake backend. Nothing here depends on how long a command
//! takes: durations are only checked where a threshold of 0 logs all.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::*;
use crate::server::client_limits::{ClientAccount, ClientLimits};
use crate::server::codec::FrameLimits;
use crate::server::command::fake::{run_line, FakeBackend};
use crate::server::command::{CommandCounters, Session};
use crate::server::connection;

/// RESP for one request of space-separated words.
fn request(line: &str) -> Vec<u8> {
    let words: Vec<&str> = line.split(' ').collect();
    let mut out = format!("*{}\r\n", words.len()).into_bytes();
    for w in words {
        out.extend_from_slice(format!("${}\r\n{w}\r\n", w.len()).as_bytes());
    }
    out
}

/// Runs `lines` pipelined through the real connection loop, recording into
/// the backend's statistics, and returns the raw output.
async fn serve(backend: &FakeBackend, lines: &[&str]) -> String {
    let (client, server) = tokio::io::duplex(1 << 20);
    let (_tx, rx) = watch::channel(false);
    let counters = CommandCounters::register().with_stats(backend.stats.clone());
    let session = Session::new(9, Some("127.0.0.1:5555".parse().expect("address")), None);
    let serving = connection::run(
        server,
        backend,
        session,
        FrameLimits::default(),
        Some(&counters),
        rx,
        ClientAccount::untracked(Arc::new(ClientLimits::default())),
    );
    let input: Vec<u8> = lines.iter().flat_map(|l| request(l)).collect();
    let (mut read, mut write) = tokio::io::split(client);
    let talk = async {
        write.write_all(&input).await.expect("pipe open");
        write.shutdown().await.expect("pipe open");
        let mut out = Vec::new();
        read.read_to_end(&mut out).await.expect("pipe open");
        out
    };
    let (served, out) = tokio::join!(serving, talk);
    served.expect("served");
    String::from_utf8_lossy(&out).into_owned()
}

fn info(backend: &FakeBackend, args: &str) -> String {
    let mut session = Session::new(1, None, None);
    match run_line(backend, &mut session, format!("INFO {args}").trim_end()) {
        Reply::Verbatim(text) => text,
        other => panic!("INFO answered {other:?}"),
    }
}

fn line<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("{name} missing in {text}"))
}

/// Calls, rejections and failures per command and subcommand, errors per
/// code, hits and misses, and the processed total, as Redis counts them.
#[tokio::test]
async fn the_connection_loop_counts_calls_rejections_failures_and_errors() {
    let backend = FakeBackend::new();
    let out = serve(
        &backend,
        &[
            "SET a 1",
            "GET a",
            "GET b",
            "GET",
            "CONFIG GET maxmemory",
            "CONFIG nosuch",
            "nosuch x",
            "INCR a",
            "HSET a f v",
            "PING",
        ],
    )
    .await;
    assert!(out.contains("-WRONGTYPE"), "{out}");
    let text = info(&backend, "commandstats");
    let stat = |name: &str| {
        let fields = line(&text, &format!("cmdstat_{name}"));
        let get = |key: &str| -> u64 {
            fields
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{key} in {fields}"))
        };
        (get("calls"), get("rejected_calls"), get("failed_calls"))
    };
    assert_eq!(stat("get"), (2, 1, 0));
    assert_eq!(stat("set"), (1, 0, 0));
    assert_eq!(stat("hset"), (1, 0, 1), "WRONGTYPE is a failed call");
    assert_eq!(stat("config|get"), (1, 0, 0));
    assert_eq!(
        stat("config"),
        (0, 1, 0),
        "an unknown subcommand is rejected"
    );
    assert!(line(&text, "cmdstat_get").contains("usec_per_call="));
    let errors = info(&backend, "errorstats");
    assert_eq!(line(&errors, "errorstat_ERR"), "count=3");
    assert_eq!(line(&errors, "errorstat_WRONGTYPE"), "count=1");
    let stats = info(&backend, "stats");
    assert_eq!(line(&stats, "total_commands_processed"), "10");
    assert_eq!(line(&stats, "total_error_replies"), "4");
    assert_eq!(line(&stats, "keyspace_hits"), "1");
    assert_eq!(line(&stats, "keyspace_misses"), "1");
    let latency = info(&backend, "latencystats");
    assert!(
        line(&latency, "latency_percentiles_usec_get").starts_with("p50="),
        "{latency}"
    );
    assert!(latency.contains(",p99=") && latency.contains(",p99.9="));

    let mut session = Session::new(1, None, None);
    assert_eq!(
        run_line(&backend, &mut session, "CONFIG RESETSTAT"),
        Reply::OK
    );
    assert!(!info(&backend, "commandstats").contains("cmdstat_get"));
    assert_eq!(info(&backend, "errorstats"), "# Errorstats\r\n");
    assert_eq!(
        line(&info(&backend, "stats"), "total_commands_processed"),
        "0"
    );
    assert_eq!(line(&info(&backend, "stats"), "keyspace_hits"), "0");
}

/// A queued command is a call when EXEC runs it (Redis 7.0's `call()` from
/// `execCommand`), not when it is queued; a discarded one never is.
#[tokio::test]
async fn queued_commands_count_when_exec_runs_them() {
    let backend = FakeBackend::new();
    let out = serve(
        &backend,
        &[
            "MULTI",
            "SET a 1",
            "INCR a",
            "HSET a f v",
            "EXEC",
            "MULTI",
            "SET b 2",
            "DISCARD",
        ],
    )
    .await;
    assert!(out.contains("-WRONGTYPE"), "{out}");
    let text = info(&backend, "commandstats");
    let calls = |name: &str| {
        line(&text, &format!("cmdstat_{name}"))
            .split(',')
            .take(1)
            .collect::<String>()
    };
    assert_eq!(calls("set"), "calls=1");
    assert_eq!(calls("incr"), "calls=1");
    assert_eq!(calls("multi"), "calls=2");
    assert_eq!(calls("exec"), "calls=1");
    assert_eq!(calls("discard"), "calls=1");
    assert!(
        line(&text, "cmdstat_hset").contains("failed_calls=1"),
        "{text}"
    );
    let stats = info(&backend, "stats");
    assert_eq!(line(&stats, "total_commands_processed"), "7");
}

/// `INFO`, `default`, `all`, `everything` and lists of sections select what
/// Redis 7.0 selects.
#[test]
fn info_selects_sections_as_redis_7() {
    let backend = FakeBackend::new();
    let titles = |text: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix("# "))
            .map(str::to_string)
            .collect()
    };
    let default = [
        "Server",
        "Clients",
        "Memory",
        "Persistence",
        "Stats",
        "Replication",
        "CPU",
        "Modules",
        "Errorstats",
        "Cluster",
        "Raft",
        "Keyspace",
    ];
    assert_eq!(titles(&info(&backend, "")), default);
    assert_eq!(titles(&info(&backend, "DEFAULT")), default);
    let all = [
        "Server",
        "Clients",
        "Memory",
        "Persistence",
        "Stats",
        "Replication",
        "CPU",
        "Modules",
        "Commandstats",
        "Errorstats",
        "Latencystats",
        "Cluster",
        "Raft",
        "Keyspace",
    ];
    assert_eq!(titles(&info(&backend, "all")), all);
    assert_eq!(titles(&info(&backend, "everything")), all);
    assert_eq!(
        titles(&info(&backend, "keyspace CommandStats cpu nosuch")),
        ["CPU", "Commandstats", "Keyspace"]
    );
    assert_eq!(titles(&info(&backend, "module_list")), ["Modules"]);
    let mut with_stats = default.to_vec();
    with_stats.insert(8, "Commandstats");
    assert_eq!(titles(&info(&backend, "default commandstats")), with_stats);
}

/// Followers are Redis's replicas: their RESP address, their match index
/// as the offset, the last log index as the master's offset.
#[test]
fn info_replication_lists_followers_as_slaves() {
    let backend = FakeBackend::new();
    let text = info(&backend, "replication");
    assert_eq!(line(&text, "role"), "master");
    assert_eq!(line(&text, "connected_slaves"), "2");
    assert_eq!(
        line(&text, "slave0"),
        "ip=127.0.0.1,port=6382,state=online,offset=8,lag=0"
    );
    assert_eq!(
        line(&text, "slave1"),
        "ip=127.0.0.1,port=6383,state=online,offset=5,lag=0"
    );
    assert_eq!(line(&text, "master_repl_offset"), "8");
}

/// SLOWLOG: every request at threshold 0, newest first, arguments cut as
/// Redis cuts them, the client's address and name, LEN/RESET/GET count and
/// slowlog-max-len; a negative threshold logs nothing.
#[tokio::test]
async fn slowlog_keeps_the_newest_entries_in_redis_shape() {
    let backend = FakeBackend::new();
    let mut admin = Session::new(1, None, None);
    let mut run = |line: &str| run_line(&backend, &mut admin, line);
    assert_eq!(
        run("CONFIG GET slowlog-*"),
        Reply::Map(vec![
            (
                Reply::bulk_str("slowlog-log-slower-than"),
                Reply::bulk_str("10000")
            ),
            (Reply::bulk_str("slowlog-max-len"), Reply::bulk_str("128")),
        ])
    );
    assert_eq!(run("CONFIG SET slowlog-log-slower-than 0"), Reply::OK);
    assert_eq!(
        run("CONFIG SET slowlog-log-slower-than -2"),
        Reply::error("ERR CONFIG SET failed (possibly related to argument 'slowlog-log-slower-than') - argument must be between -1 and 9223372036854775807 inclusive")
    );
    assert_eq!(
        run("CONFIG SET slowlog-max-len x"),
        Reply::error("ERR CONFIG SET failed (possibly related to argument 'slowlog-max-len') - argument couldn't be parsed into an integer")
    );
    let long = "v".repeat(200);
    let many: Vec<String> = (0..40).map(|i| i.to_string()).collect();
    serve(
        &backend,
        &[
            "CLIENT SETNAME app",
            &format!("SET k {long}"),
            &format!("MSET {}", many.join(" ")),
        ],
    )
    .await;
    let mut run = |line: &str| run_line(&backend, &mut admin, line);
    assert_eq!(run("SLOWLOG LEN"), Reply::Integer(3));
    let Reply::Array(entries) = run("SLOWLOG GET 2") else {
        panic!("an array")
    };
    assert_eq!(entries.len(), 2);
    let Reply::Array(newest) = &entries[0] else {
        panic!("an entry")
    };
    assert_eq!(newest[0], Reply::Integer(2), "ids count from 0");
    assert!(matches!(newest[1], Reply::Integer(t) if t > 1_700_000_000));
    assert!(matches!(newest[2], Reply::Integer(u) if u >= 0));
    let Reply::Array(args) = &newest[3] else {
        panic!("arguments")
    };
    assert_eq!(args.len(), 32);
    assert_eq!(args[0], Reply::bulk_str("MSET"));
    assert_eq!(args[31], Reply::bulk_str("... (10 more arguments)"));
    assert_eq!(newest[4], Reply::bulk_str("127.0.0.1:5555"));
    assert_eq!(newest[5], Reply::bulk_str("app"));
    let Reply::Array(set) = &entries[1] else {
        panic!("an entry")
    };
    assert_eq!(
        set[3],
        Reply::Array(vec![
            Reply::bulk_str("SET"),
            Reply::bulk_str("k"),
            Reply::bulk(format!("{}... (72 more bytes)", "v".repeat(128))),
        ])
    );
    assert!(matches!(run("SLOWLOG GET"), Reply::Array(a) if a.len() == 3));
    assert!(matches!(run("SLOWLOG GET -1"), Reply::Array(a) if a.len() == 3));
    assert_eq!(
        run("SLOWLOG GET -2"),
        Reply::error("ERR count should be greater than or equal to -1")
    );
    assert_eq!(
        run("SLOWLOG GET x"),
        Reply::error("ERR count should be greater than or equal to -1")
    );
    assert_eq!(run("CONFIG SET slowlog-max-len 1"), Reply::OK);
    serve(&backend, &["PING"]).await;
    let mut run = |line: &str| run_line(&backend, &mut admin, line);
    assert_eq!(run("SLOWLOG LEN"), Reply::Integer(1));
    assert_eq!(run("SLOWLOG RESET"), Reply::OK);
    assert_eq!(run("SLOWLOG LEN"), Reply::Integer(0));
    assert_eq!(run("CONFIG SET slowlog-log-slower-than -1"), Reply::OK);
    serve(&backend, &["PING", "AUTH x"]).await;
    assert_eq!(
        run_line(&backend, &mut admin, "SLOWLOG LEN"),
        Reply::Integer(0)
    );
    assert_eq!(
        run_line(&backend, &mut admin, "SLOWLOG NOSUCH"),
        Reply::error("ERR unknown subcommand 'NOSUCH'. Try SLOWLOG HELP.")
    );
}

/// A group longer than `slowlog-max-len` builds only the entries that stay:
/// the log reads as if every request had been offered (the same ids, the
/// same newest entries), whatever groups the requests came in.
#[tokio::test]
async fn a_long_group_keeps_the_slow_log_it_would_have_offered_whole() {
    let backend = FakeBackend::new();
    let mut admin = Session::new(1, None, None);
    assert_eq!(
        run_line(&backend, &mut admin, "CONFIG SET slowlog-log-slower-than 0"),
        Reply::OK
    );
    assert_eq!(
        run_line(&backend, &mut admin, "CONFIG SET slowlog-max-len 5"),
        Reply::OK
    );
    // (id, key) of each entry, newest first.
    let shown = |admin: &mut Session| -> Vec<(Reply, Reply)> {
        let Reply::Array(entries) = run_line(&backend, admin, "SLOWLOG GET") else {
            panic!("an array")
        };
        entries
            .iter()
            .map(|entry| {
                let Reply::Array(fields) = entry else {
                    panic!("an entry")
                };
                let Reply::Array(args) = &fields[3] else {
                    panic!("arguments")
                };
                (fields[0].clone(), args[1].clone())
            })
            .collect()
    };
    let expect = |entries: &[(i64, &str)]| -> Vec<(Reply, Reply)> {
        entries
            .iter()
            .map(|&(id, key)| (Reply::Integer(id), Reply::bulk_str(key)))
            .collect()
    };
    let sets: Vec<String> = (0..20).map(|i| format!("SET k{i} v")).collect();
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    serve(&backend, &sets).await;
    assert_eq!(
        *backend.batches.lock().expect("not poisoned"),
        1,
        "one group"
    );
    assert_eq!(
        shown(&mut admin),
        expect(&[
            (19, "k19"),
            (18, "k18"),
            (17, "k17"),
            (16, "k16"),
            (15, "k15")
        ])
    );
    serve(&backend, &["GET k0", "SET k20 v", "SET k21 v", "SET k22 v"]).await;
    assert_eq!(
        shown(&mut admin),
        expect(&[
            (23, "k22"),
            (22, "k21"),
            (21, "k20"),
            (20, "k0"),
            (19, "k19")
        ])
    );
    assert_eq!(
        run_line(&backend, &mut admin, "SLOWLOG LEN"),
        Reply::Integer(5)
    );
}

/// LATENCY: LATEST, HISTORY, RESET and GRAPH's error read the monitor;
/// HISTOGRAM reads the per-command histograms in Redis's shape.
#[tokio::test]
async fn latency_reads_events_and_histograms() {
    let backend = FakeBackend::new();
    let mut admin = Session::new(1, None, None);
    assert_eq!(
        run_line(&backend, &mut admin, "CONFIG GET latency-monitor-threshold"),
        Reply::Map(vec![(
            Reply::bulk_str("latency-monitor-threshold"),
            Reply::bulk_str("0")
        )])
    );
    assert_eq!(
        run_line(
            &backend,
            &mut admin,
            "CONFIG SET latency-monitor-threshold 5"
        ),
        Reply::OK
    );
    assert_eq!(backend.stats.latency.threshold_ms(), 5);
    assert_eq!(
        run_line(&backend, &mut admin, "LATENCY LATEST"),
        Reply::Array(vec![])
    );
    assert_eq!(
        run_line(&backend, &mut admin, "LATENCY GRAPH command"),
        Reply::error("ERR No samples available for event 'command'")
    );
    backend.stats.latency.add("command", 1_700_000_000, 7);
    assert_eq!(
        run_line(&backend, &mut admin, "LATENCY LATEST"),
        Reply::Array(vec![Reply::Array(vec![
            Reply::bulk_str("command"),
            Reply::Integer(1_700_000_000),
            Reply::Integer(7),
            Reply::Integer(7),
        ])])
    );
    assert_eq!(
        run_line(&backend, &mut admin, "LATENCY HISTORY command"),
        Reply::Array(vec![Reply::Array(vec![
            Reply::Integer(1_700_000_000),
            Reply::Integer(7)
        ])])
    );
    assert!(matches!(
        run_line(&backend, &mut admin, "LATENCY GRAPH command"),
        Reply::Verbatim(text) if text.starts_with("command - high 7 ms")
    ));
    assert!(matches!(
        run_line(&backend, &mut admin, "LATENCY DOCTOR"),
        Reply::Verbatim(text) if text.contains("1. command: 1 latency spikes")
    ));
    assert_eq!(
        run_line(&backend, &mut admin, "LATENCY RESET nosuch command"),
        Reply::Integer(1)
    );
    serve(&backend, &["SET a 1", "GET a", "GET a", "CONFIG GET x"]).await;
    let Reply::Map(histograms) =
        run_line(&backend, &mut admin, "LATENCY HISTOGRAM get config nosuch")
    else {
        panic!("a map")
    };
    let names: Vec<&Reply> = histograms.iter().map(|(name, _)| name).collect();
    assert_eq!(
        names,
        [&Reply::bulk_str("get"), &Reply::bulk_str("config|get")]
    );
    let Reply::Map(get) = &histograms[0].1 else {
        panic!("a map")
    };
    assert_eq!(get[0], (Reply::bulk_str("calls"), Reply::Integer(2)));
    let Reply::Map(buckets) = &get[1].1 else {
        panic!("buckets")
    };
    assert_eq!(get[1].0, Reply::bulk_str("histogram_usec"));
    assert_eq!(buckets.last().map(|b| &b.1), Some(&Reply::Integer(2)));
    let Reply::Map(all) = run_line(&backend, &mut admin, "LATENCY HISTOGRAM") else {
        panic!("a map")
    };
    assert!(all.len() >= 3, "set, get, config|get: {all:?}");
}

/// MONITOR: a second connection's commands reach the monitor in Redis's
/// line format, refused and admin commands do not; MONITOR in MULTI is
/// refused and aborts the transaction.
#[tokio::test]
async fn monitor_shows_other_connections_commands() {
    let backend = FakeBackend::new();
    let counters = CommandCounters::register().with_stats(backend.stats.clone());
    let (monitor_client, monitor_server) = tokio::io::duplex(1 << 16);
    let (_tx, rx) = watch::channel(false);
    let monitor_conn = connection::run(
        monitor_server,
        &backend,
        Session::new(1, Some("127.0.0.1:6000".parse().expect("addr")), None),
        FrameLimits::default(),
        Some(&counters),
        rx,
        ClientAccount::untracked(Arc::new(ClientLimits::default())),
    );
    let watch_it = async {
        let (mut read, mut write) = tokio::io::split(monitor_client);
        write
            .write_all(&request("MONITOR"))
            .await
            .expect("pipe open");
        let mut ok = [0u8; 5];
        read.read_exact(&mut ok).await.expect("pipe open");
        assert_eq!(&ok, b"+OK\r\n");
        let out = serve(
            &backend,
            &[
                "SET k v",
                "GET",
                "CONFIG GET maxmemory",
                "SELECT 2",
                "GET k",
                "MULTI",
                "SET d 1",
                "DISCARD",
                "MULTI",
                "SET m 1",
                "exec",
            ],
        )
        .await;
        assert!(out.starts_with("+OK\r\n"), "{out}");
        write.shutdown().await.expect("pipe open");
        let mut lines = Vec::new();
        read.read_to_end(&mut lines).await.expect("pipe open");
        String::from_utf8_lossy(&lines).into_owned()
    };
    let (served, lines) = tokio::join!(monitor_conn, watch_it);
    served.expect("served");
    let lines: Vec<&str> = lines.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 8, "{lines:?}");
    assert!(lines[0].starts_with('+'), "{lines:?}");
    assert!(
        lines[0].ends_with(" [0 127.0.0.1:5555] \"SET\" \"k\" \"v\""),
        "{lines:?}"
    );
    assert!(
        lines[1].ends_with(" [2 127.0.0.1:5555] \"SELECT\" \"2\""),
        "{lines:?}"
    );
    assert!(
        lines[2].ends_with(" [2 127.0.0.1:5555] \"GET\" \"k\""),
        "{lines:?}"
    );
    // Redis 7.0 shows a queued command when EXEC runs it, then EXEC (as
    // the client spelled it); a discarded one never.
    let tails: Vec<&str> = lines[3..]
        .iter()
        .map(|l| l.split_once("] ").map_or(*l, |(_, tail)| tail))
        .collect();
    assert_eq!(
        tails,
        [
            "\"MULTI\"",
            "\"DISCARD\"",
            "\"MULTI\"",
            "\"SET\" \"m\" \"1\"",
            "\"exec\""
        ]
    );
    assert!(backend.stats.monitors.is_empty(), "detached on close");

    let mut session = Session::new(3, None, None);
    assert_eq!(run_line(&backend, &mut session, "MULTI"), Reply::OK);
    assert_eq!(
        run_line(&backend, &mut session, "MONITOR"),
        Reply::error("ERR Command not allowed inside a transaction")
    );
    assert_eq!(
        run_line(&backend, &mut session, "EXEC"),
        Reply::error("EXECABORT Transaction discarded because of previous errors.")
    );
}
