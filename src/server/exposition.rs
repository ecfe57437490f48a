//! The `/metrics` families computed when Prometheus scrapes, in its text
//! format, appended after what the `metrics` recorder renders
//! (`crate::metrics`).
//!
//! Figures the node already keeps for INFO (per-command latency, keyspace
//! hits and misses, expiries, memory, traffic) and the Raft status are read
//! here at scrape time rather than mirrored into recorder handles on every
//! command: the hot path pays nothing for them. Every family has `HELP` and
//! `TYPE` lines and a `dkv_` prefix, except the `process_*` families, which
//! keep the names every Prometheus client library uses for them.
//!
//! Command latency comes from the same histograms as `INFO latencystats`
//! and `LATENCY HISTOGRAM` (whole microseconds, 12.5% precision). Its `le`
//! bounds are powers of two microseconds, where those histograms' buckets
//! end exactly: a bucket `le="0.000128"` counts the calls that took at most
//! 127 µs (whole microseconds below 128). `CONFIG RESETSTAT` zeroes these
//! counters, which Prometheus treats as a counter reset.

use std::fmt::Write as _;

use crate::node::NodeStatus;
use crate::raft::Role;
use crate::server::command::Env;
use crate::server::stats::Stats;

/// Upper bounds (µs, powers of two) of the command latency buckets: 16 µs to
/// about 16.8 s.
const LATENCY_POWERS: std::ops::RangeInclusive<u32> = 4..=24;

/// Writes one family's `HELP` and `TYPE` lines.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One unlabelled sample, with its header.
fn single(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    header(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// A label value in Prometheus's escaping (backslash, quote, newline).
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Renders every scrape-time family of the node behind `env`.
pub fn render(env: &dyn Env, out: &mut String) {
    let status = env.status();
    raft(out, &status);
    let kv = env.kv_info();
    single(
        out,
        "dkv_keyspace_hits_total",
        "counter",
        "Reads on this node that found their key.",
        kv.keyspace_hits,
    );
    single(
        out,
        "dkv_keyspace_misses_total",
        "counter",
        "Reads on this node that did not find their key.",
        kv.keyspace_misses,
    );
    single(
        out,
        "dkv_expired_keys_total",
        "counter",
        "Keys removed because their TTL ran out (replicated: the same on every node).",
        kv.stats.expired_keys,
    );
    single(
        out,
        "dkv_evicted_keys_total",
        "counter",
        "Keys evicted to stay under maxmemory (replicated: the same on every node).",
        kv.stats.evicted_keys,
    );
    single(
        out,
        "dkv_used_memory_bytes",
        "gauge",
        "Memory the keyspace accounts for (what maxmemory is compared with).",
        kv.used_memory,
    );
    single(
        out,
        "dkv_maxmemory_bytes",
        "gauge",
        "The maxmemory limit (0: none).",
        kv.maxmemory,
    );
    header(
        out,
        "dkv_db_keys",
        "gauge",
        "Keys per database (non-empty databases only).",
    );
    for &(db, keys, _, _) in &kv.keyspace {
        let _ = writeln!(out, "dkv_db_keys{{db=\"{db}\"}} {keys}");
    }
    header(
        out,
        "dkv_db_expiring_keys",
        "gauge",
        "Keys with a TTL per database (non-empty databases only).",
    );
    for &(db, _, expiring, _) in &kv.keyspace {
        let _ = writeln!(out, "dkv_db_expiring_keys{{db=\"{db}\"}} {expiring}");
    }
    single(
        out,
        "dkv_blocked_clients",
        "gauge",
        "Clients on this node blocked in BLPOP, BZPOPMIN, XREAD BLOCK and the like.",
        env.key_waits().map_or(0, |waits| waits.count()),
    );
    if let Some(stats) = env.stats() {
        commands(out, stats);
    }
    process(out);
}

/// The node's Raft position, and the leader's view of its followers.
fn raft(out: &mut String, status: &NodeStatus) {
    single(
        out,
        "dkv_raft_last_log_index",
        "gauge",
        "Index of the last entry in this node's log.",
        status.last_log_index.0,
    );
    single(
        out,
        "dkv_raft_apply_lag_entries",
        "gauge",
        "Committed entries this node has not applied yet.",
        status.commit_index.0.saturating_sub(status.last_applied.0),
    );
    single(
        out,
        "dkv_raft_snapshot_index",
        "gauge",
        "Index of the newest snapshot on this node's disk (0: none).",
        status.snapshot_index.0,
    );
    single(
        out,
        "dkv_raft_voters",
        "gauge",
        "Voting members of the cluster.",
        status.voters,
    );
    single(
        out,
        "dkv_raft_has_leader",
        "gauge",
        "1 if this node knows a current leader, else 0.",
        u8::from(status.leader.is_some()),
    );
    single(
        out,
        "dkv_raft_is_leader",
        "gauge",
        "1 if this node is the leader, else 0.",
        u8::from(status.role == Role::Leader),
    );
    single(
        out,
        "dkv_loading",
        "gauge",
        "1 while this node replays its log at start (it answers LOADING), else 0.",
        u8::from(status.loading),
    );
    // Only the leader knows its followers' progress; elsewhere the families
    // are present and empty.
    header(
        out,
        "dkv_raft_follower_match_index",
        "gauge",
        "Leader only: highest log index known replicated on each follower.",
    );
    for f in &status.followers {
        let _ = writeln!(
            out,
            "dkv_raft_follower_match_index{{peer=\"{}\"}} {}",
            f.id.0, f.match_index.0
        );
    }
    header(
        out,
        "dkv_raft_follower_lag_entries",
        "gauge",
        "Leader only: entries of the leader's log each follower is not known to hold.",
    );
    for f in &status.followers {
        let _ = writeln!(
            out,
            "dkv_raft_follower_lag_entries{{peer=\"{}\"}} {}",
            f.id.0,
            status.last_log_index.0.saturating_sub(f.match_index.0)
        );
    }
    header(
        out,
        "dkv_raft_follower_last_heard_seconds",
        "gauge",
        "Leader only: whole seconds since each follower last answered.",
    );
    for f in &status.followers {
        let _ = writeln!(
            out,
            "dkv_raft_follower_last_heard_seconds{{peer=\"{}\"}} {}",
            f.id.0, f.last_heard_secs
        );
    }
}

/// Per-command latency, error codes and traffic from the node's statistics.
fn commands(out: &mut String, stats: &Stats) {
    header(
        out,
        "dkv_command_duration_seconds",
        "histogram",
        "Time from reading a command to its reply being ready, per command (includes the Raft round of writes).",
    );
    let figures = stats.commands();
    for (name, histogram) in stats.histograms() {
        let cmd = escape(name);
        let cumulative = histogram.cumulative_powers_of_two();
        let total = histogram.total();
        for power in LATENCY_POWERS {
            let bound = 1u64 << power;
            let seen = cumulative
                .iter()
                .take_while(|&&(b, _)| b <= bound)
                .last()
                .map_or(0, |&(_, n)| n);
            let le = bound as f64 / 1e6;
            let _ = writeln!(
                out,
                "dkv_command_duration_seconds_bucket{{cmd=\"{cmd}\",le=\"{le}\"}} {seen}"
            );
        }
        let _ = writeln!(
            out,
            "dkv_command_duration_seconds_bucket{{cmd=\"{cmd}\",le=\"+Inf\"}} {total}"
        );
        let usec = figures
            .iter()
            .find(|f| f.name == name)
            .map_or(0, |f| f.usec);
        let _ = writeln!(
            out,
            "dkv_command_duration_seconds_sum{{cmd=\"{cmd}\"}} {}",
            usec as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "dkv_command_duration_seconds_count{{cmd=\"{cmd}\"}} {total}"
        );
    }
    header(
        out,
        "dkv_error_replies_total",
        "counter",
        "Error replies sent, by error code (the reply's first word, as INFO errorstats).",
    );
    for (code, count) in stats.errors() {
        let _ = writeln!(
            out,
            "dkv_error_replies_total{{code=\"{}\"}} {count}",
            escape(&code)
        );
    }
    let traffic = &stats.traffic;
    let load = |v: &std::sync::atomic::AtomicU64| v.load(std::sync::atomic::Ordering::Relaxed);
    single(
        out,
        "dkv_net_input_bytes_total",
        "counter",
        "Bytes read from client connections.",
        load(&traffic.net_input_bytes),
    );
    single(
        out,
        "dkv_net_output_bytes_total",
        "counter",
        "Bytes written to client connections.",
        load(&traffic.net_output_bytes),
    );
    single(
        out,
        "dkv_connections_received_total",
        "counter",
        "Client connections accepted.",
        load(&traffic.connections_received),
    );
    single(
        out,
        "dkv_rejected_connections_total",
        "counter",
        "Client connections refused at maxclients.",
        load(&traffic.rejected_connections),
    );
}

/// The standard `process_*` families, from `/proc/self` (Linux; nothing
/// elsewhere).
fn process(out: &mut String) {
    let Some(figures) = ProcessFigures::read() else {
        return;
    };
    single(
        out,
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        figures.cpu_seconds,
    );
    single(
        out,
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        figures.resident_bytes,
    );
    single(
        out,
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        figures.virtual_bytes,
    );
    single(
        out,
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        figures.start_time_seconds,
    );
    single(
        out,
        "process_threads",
        "gauge",
        "Number of OS threads in the process.",
        figures.threads,
    );
    if let Some(open) = figures.open_fds {
        single(
            out,
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            open,
        );
    }
    if let Some(max) = figures.max_fds {
        single(
            out,
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            max,
        );
    }
}

/// What `/proc/self` says about this process.
#[derive(Debug, PartialEq)]
struct ProcessFigures {
    cpu_seconds: f64,
    resident_bytes: u64,
    virtual_bytes: u64,
    start_time_seconds: f64,
    threads: u64,
    open_fds: Option<usize>,
    max_fds: Option<u64>,
}

/// Clock ticks per second of `/proc/<pid>/stat`'s times (`sysconf(_SC_CLK_TCK)`).
fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// Bytes per page (`sysconf(_SC_PAGESIZE)`).
fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
}

impl ProcessFigures {
    fn read() -> Option<ProcessFigures> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let boot = std::fs::read_to_string("/proc/stat").ok()?;
        let mut figures = ProcessFigures::parse(&stat, &boot, clock_ticks(), page_size())?;
        figures.open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|dir| dir.count());
        figures.max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|limits| parse_max_fds(&limits));
        Some(figures)
    }

    /// Parses `/proc/self/stat` (`stat`) with the boot time from
    /// `/proc/stat` (`boot`).
    fn parse(stat: &str, boot: &str, ticks: f64, page: u64) -> Option<ProcessFigures> {
        // The command name (field 2) is in parentheses and may hold spaces:
        // the fields that follow start after the last ')'.
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // `rest` starts at field 3 (state): field n is fields[n - 3].
        let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
        let utime = field(14)?;
        let stime = field(15)?;
        let threads = field(20)?;
        let start_ticks = field(22)?;
        let vsize = field(23)?;
        let rss_pages = field(24)?;
        let boot_time = boot
            .lines()
            .find_map(|line| line.strip_prefix("btime "))?
            .trim()
            .parse::<u64>()
            .ok()?;
        Some(ProcessFigures {
            cpu_seconds: (utime + stime) as f64 / ticks,
            resident_bytes: rss_pages.saturating_mul(page),
            virtual_bytes: vsize,
            start_time_seconds: boot_time as f64 + start_ticks as f64 / ticks,
            threads,
            open_fds: None,
            max_fds: None,
        })
    }
}

/// The soft limit of "Max open files" in `/proc/self/limits`.
fn parse_max_fds(limits: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_is_read_past_a_command_name_with_spaces_and_parens() {
        // Fields 1..=24 of a real /proc/<pid>/stat line, name "dkv (x) y".
        let stat = "4242 (dkv (x) y) S 1 4242 4242 0 -1 4194560 1500 0 0 0 250 50 0 0 20 0 7 0 \
                    12345 1073741824 2560 18446744073709551615";
        let boot = "cpu  1 2 3\nbtime 1700000000\nprocesses 9\n";
        let figures = ProcessFigures::parse(stat, boot, 100.0, 4096).expect("parses");
        assert!((figures.cpu_seconds - 3.0).abs() < 1e-9, "{figures:?}");
        assert_eq!(figures.resident_bytes, 2560 * 4096);
        assert_eq!(figures.virtual_bytes, 1 << 30);
        assert!(
            (figures.start_time_seconds - 1_700_000_123.45).abs() < 1e-3,
            "{figures:?}"
        );
        assert_eq!(figures.threads, 7);
        assert_eq!(ProcessFigures::parse("garbage", boot, 100.0, 4096), None);
        assert_eq!(ProcessFigures::parse(stat, "no btime", 100.0, 4096), None);
    }

    #[test]
    fn max_open_files_is_the_soft_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_max_fds(limits), Some(1024));
        assert_eq!(parse_max_fds("Max processes 5 5"), None);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn the_live_process_reads_its_own_figures() {
        let figures = ProcessFigures::read().expect("/proc/self is readable on Linux");
        assert!(figures.resident_bytes > 0);
        assert!(figures.threads >= 1);
        assert!(figures.open_fds.is_some_and(|n| n >= 1));
        assert!(figures.start_time_seconds > 1_000_000_000.0);
    }
}
