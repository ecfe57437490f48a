//! The facts a node shows about itself (`INFO`, `HELLO`) and the INFO text.
//!
//! INFO answers in Redis 7.0's format (`# Section\r\nfield:value\r\n`,
//! sections separated by an empty line) with Redis's sections and an extra
//! `# Raft` section. It never waits for the cluster: it reads the node's
//! status, the local map's figures and the node's statistics
//! ([`super::stats`]), so it answers during WAL replay (`loading:1`), which
//! ioredis relies on.
//!
//! Every figure is this node's own, as each Redis server reports its own;
//! `# Keyspace` and `used_memory_dataset` describe the local replica, which
//! holds the same data as every other once it has applied as far. Fields
//! Redis 7.0 has and dkv does not are listed in the README with the reason.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::stats::{Stats, PERCENTILES};
use crate::kv::KvInfo;
use crate::node::NodeStatus;
use crate::raft::Role;

/// The Redis version dkv reports as `redis_version` in INFO: the command set and
/// reply formats follow Redis 7.0. dkv's own version is `dkv_version`.
pub const REDIS_COMPAT_VERSION: &str = "7.0.0";

/// Fixed facts about this server process, set at start.
#[derive(Clone, Debug)]
pub struct ServerFacts {
    /// dkv's version (`env!("CARGO_PKG_VERSION")`).
    pub version: &'static str,
    /// The RESP port clients connect to.
    pub tcp_port: u16,
    /// The HTTP address (peer RPC, /metrics).
    pub http_addr: Option<SocketAddr>,
    /// 40 hex characters, new on every start (Redis's `run_id`).
    pub run_id: String,
    /// When the process started.
    pub started_at: Instant,
    /// The config file the node was started with.
    pub config_file: Option<PathBuf>,
    /// The connection cap.
    pub max_clients: usize,
    /// The process's global allocator, as `INFO memory` names it.
    pub mem_allocator: &'static str,
    /// The allocator's own figures, when the binary can ask it (the
    /// library does not choose the global allocator).
    pub allocator_figures: Option<fn() -> AllocatorFigures>,
    /// The data directory (LASTSAVE and INFO persistence read its
    /// snapshots' times).
    pub data_dir: Option<PathBuf>,
}

/// What the global allocator reports about the process's heap, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocatorFigures {
    /// Bytes allocated and not yet freed (`metrics::alloc::Counting`):
    /// INFO's `used_memory` and `allocator_allocated`, as Redis's
    /// `zmalloc_used_memory`.
    pub allocated_bytes: u64,
    /// The most allocated bytes seen when asked (`used_memory_peak`).
    pub peak_allocated_bytes: u64,
    /// Memory the allocator has committed (obtained from the OS and not
    /// returned, freed or not): INFO's `allocator_active`.
    pub committed_bytes: u64,
}

impl ServerFacts {
    /// Facts with a fresh random run id, started now.
    pub fn new(
        tcp_port: u16,
        http_addr: Option<SocketAddr>,
        config_file: Option<PathBuf>,
        max_clients: usize,
    ) -> ServerFacts {
        ServerFacts {
            version: env!("CARGO_PKG_VERSION"),
            tcp_port,
            http_addr,
            run_id: new_run_id(),
            started_at: Instant::now(),
            mem_allocator: "libc",
            allocator_figures: None,
            data_dir: None,
            config_file,
            max_clients,
        }
    }
}

/// A random 40-hex-character id, like Redis's run id.
pub fn new_run_id() -> String {
    use rand::RngExt;
    let mut rng = rand::rng();
    (0..40)
        .map(|_| char::from_digit(rng.random_range(0..16u32), 16).expect("digit below 16"))
        .collect()
}

/// The INFO sections, in output order, with whether `INFO` / `INFO default`
/// includes them (`all` and `everything` include every one).
pub const SECTIONS: &[(&str, bool)] = &[
    ("server", true),
    ("clients", true),
    ("memory", true),
    ("persistence", true),
    ("stats", true),
    ("replication", true),
    ("cpu", true),
    ("modules", true),
    ("commandstats", false),
    ("errorstats", true),
    ("latencystats", false),
    ("cluster", true),
    ("raft", true),
    ("keyspace", true),
];

/// What INFO reports, gathered by the caller.
#[derive(Clone, Debug)]
pub struct InfoInput<'a> {
    /// Process facts.
    pub facts: &'a ServerFacts,
    /// The node's status.
    pub status: &'a NodeStatus,
    /// The local map's figures.
    pub kv: &'a KvInfo,
    /// Open client connections.
    pub connected_clients: usize,
    /// This node's clients blocked in BLPOP, BZPOPMIN ... (waiting for a key).
    pub blocked_clients: usize,
    /// This node's client-side caching table.
    pub tracking: crate::node::tracking::TrackingFigures,
    /// Clients closed by client limits (None: all zero).
    pub client_stats: Option<&'a crate::server::client_limits::LimitStats>,
    /// The node's command statistics (None: all zero).
    pub stats: Option<&'a Stats>,
    /// The membership in effect on this node, in id order (empty when the
    /// environment has no node).
    pub members: &'a [crate::node::Member],
    /// A `FAILOVER` started on this node is running.
    pub failover_running: bool,
}

/// Redis's name for this node's replication role: `master` on the leader.
pub fn redis_role(role: Role) -> &'static str {
    match role {
        Role::Leader => "master",
        Role::Follower | Role::Candidate => "replica",
    }
}

fn raft_role(role: Role) -> &'static str {
    match role {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
    }
}

/// Which sections the INFO arguments select, as Redis 7.0 takes them: none
/// means `default`; `default`, `all` and `everything` add their sets; any
/// other name adds its section (`module_list` is `modules`); unknown names
/// add nothing.
pub fn select_sections(args: &[&[u8]]) -> Vec<&'static str> {
    let is = |a: &[u8], name: &str| a.eq_ignore_ascii_case(name.as_bytes());
    let all = args.iter().any(|a| is(a, "all") || is(a, "everything"));
    let default = args.is_empty() || args.iter().any(|a| is(a, "default"));
    SECTIONS
        .iter()
        .filter(|(name, in_default)| {
            all || (default && *in_default)
                || args
                    .iter()
                    .any(|a| is(a, name) || (*name == "modules" && is(a, "module_list")))
        })
        .map(|(name, _)| *name)
        .collect()
}

/// Renders the selected sections.
pub fn render(sections: &[&str], input: &InfoInput<'_>) -> String {
    let mut out = String::new();
    for (i, section) in sections.iter().enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        render_section(section, input, &mut out);
    }
    out
}

/// Appends `name:value\r\n`.
fn field(out: &mut String, name: &str, value: impl std::fmt::Display) {
    let _ = write!(out, "{name}:{value}\r\n");
}

fn render_section(section: &str, input: &InfoInput<'_>, out: &mut String) {
    out.push_str("# ");
    out.push_str(title(section));
    out.push_str("\r\n");
    match section {
        "server" => server(input, out),
        "clients" => clients(input, out),
        "memory" => memory(input, out),
        "persistence" => persistence(input, out),
        "stats" => stats(input, out),
        "replication" => replication(input, out),
        "cpu" => cpu(out),
        "commandstats" => commandstats(input, out),
        "errorstats" => {
            for (code, count) in input.stats.map(Stats::errors).unwrap_or_default() {
                field(
                    out,
                    &format!("errorstat_{}", safe(&code)),
                    format_args!("count={count}"),
                );
            }
        }
        "latencystats" => latencystats(input, out),
        "cluster" => field(out, "cluster_enabled", 1),
        "raft" => raft(input, out),
        "keyspace" => {
            for (db, keys, expires, avg_ttl) in &input.kv.keyspace {
                field(
                    out,
                    &format!("db{db}"),
                    format_args!("keys={keys},expires={expires},avg_ttl={avg_ttl}"),
                );
            }
        }
        // "modules": dkv loads no modules.
        _ => {}
    }
}

/// Redis's INFO-safe text: `#`, `:`, CR and LF become `_`.
fn safe(text: &str) -> String {
    text.replace(['#', ':', '\r', '\n'], "_")
}

fn server(input: &InfoInput<'_>, out: &mut String) {
    let facts = input.facts;
    let uptime = facts.started_at.elapsed().as_secs();
    let now_usec = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    field(out, "redis_version", REDIS_COMPAT_VERSION);
    field(out, "dkv_version", facts.version);
    field(out, "redis_mode", "cluster");
    field(out, "os", os_name());
    field(out, "arch_bits", usize::BITS);
    field(out, "monotonic_clock", "POSIX clock_gettime");
    field(out, "multiplexing_api", "epoll");
    field(out, "process_id", std::process::id());
    field(out, "process_supervised", "no");
    field(out, "run_id", &facts.run_id);
    field(out, "tcp_port", facts.tcp_port);
    field(
        out,
        "http_addr",
        facts.http_addr.map(|a| a.to_string()).unwrap_or_default(),
    );
    field(out, "server_time_usec", now_usec);
    field(out, "uptime_in_seconds", uptime);
    field(out, "uptime_in_days", uptime / 86_400);
    field(
        out,
        "executable",
        std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    );
    field(
        out,
        "config_file",
        facts
            .config_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    );
    field(out, "io_threads_active", 0);
}

/// `uname`'s system, release and machine (`Linux 6.1.0 x86_64`).
fn os_name() -> String {
    // SAFETY: uname fills the zeroed struct it is given; the fields are
    // NUL-terminated C strings within it.
    unsafe {
        let mut name: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut name) != 0 {
            return std::env::consts::OS.to_string();
        }
        let text = |field: &[libc::c_char]| {
            std::ffi::CStr::from_ptr(field.as_ptr())
                .to_string_lossy()
                .into_owned()
        };
        format!(
            "{} {} {}",
            text(&name.sysname),
            text(&name.release),
            text(&name.machine)
        )
    }
}

fn clients(input: &InfoInput<'_>, out: &mut String) {
    field(out, "connected_clients", input.connected_clients);
    field(out, "cluster_connections", 0);
    field(out, "maxclients", input.facts.max_clients);
    field(out, "blocked_clients", input.blocked_clients);
    field(out, "tracking_clients", input.tracking.clients);
    field(out, "clients_in_timeout_table", 0);
}

fn memory(input: &InfoInput<'_>, out: &mut String) {
    let kv = input.kv;
    let ProcessMemory {
        used,
        peak,
        rss,
        allocator,
    } = process_memory(input.facts);
    field(out, "used_memory", used);
    field(out, "used_memory_human", human_bytes(used));
    field(out, "used_memory_rss", rss);
    field(out, "used_memory_rss_human", human_bytes(rss));
    field(out, "used_memory_peak", peak);
    field(out, "used_memory_peak_human", human_bytes(peak));
    field(out, "used_memory_peak_perc", percent(used, peak));
    field(out, "used_memory_dataset", kv.used_memory);
    field(
        out,
        "used_memory_dataset_perc",
        percent(kv.used_memory, used),
    );
    field(
        out,
        "allocator_allocated",
        allocator.map_or(0, |a| a.allocated_bytes),
    );
    field(
        out,
        "allocator_active",
        allocator.map_or(0, |a| a.committed_bytes),
    );
    field(out, "allocator_resident", rss);
    let system = total_system_memory();
    field(out, "total_system_memory", system);
    field(out, "total_system_memory_human", human_bytes(system));
    field(out, "maxmemory", kv.maxmemory);
    field(out, "maxmemory_human", human_bytes(kv.maxmemory));
    field(out, "maxmemory_policy", kv.policy);
    field(out, "maxmemory_used_memory", kv.used_memory);
    let allocated = allocator.map_or(0, |a| a.allocated_bytes);
    let committed = allocator.map_or(0, |a| a.committed_bytes);
    field(
        out,
        "allocator_frag_ratio",
        format_args!("{:.2}", quotient(committed, allocated)),
    );
    field(
        out,
        "allocator_frag_bytes",
        difference(committed, allocated),
    );
    field(
        out,
        "allocator_rss_ratio",
        format_args!("{:.2}", quotient(rss, committed)),
    );
    field(out, "allocator_rss_bytes", difference(rss, committed));
    let ratio = if used == 0 {
        0.0
    } else {
        rss as f64 / used as f64
    };
    field(out, "mem_fragmentation_ratio", format_args!("{ratio:.2}"));
    field(
        out,
        "mem_fragmentation_bytes",
        i128::from(rss) - i128::from(used),
    );
    field(out, "mem_not_counted_for_evict", 0);
    field(out, "mem_allocator", input.facts.mem_allocator);
    field(out, "lazyfree_pending_objects", 0);
}

/// The process's memory as INFO and MEMORY STATS report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProcessMemory {
    /// `used_memory` / `total.allocated`: the bytes allocated and not freed
    /// (the resident set where the allocator cannot be asked).
    pub used: u64,
    /// `used_memory_peak` / `peak.allocated` (at least `used`).
    pub peak: u64,
    /// `used_memory_rss`: the resident set size.
    pub rss: u64,
    /// The allocator's own figures, when it can be asked.
    pub allocator: Option<AllocatorFigures>,
}

/// What Redis tools read as the server's memory: the allocator's figure.
/// `maxmemory` is enforced against something else, the replicated estimate
/// of the data (`used_memory_dataset`), identical on every replica so that
/// every replica evicts the same keys at the same index.
pub(crate) fn process_memory(facts: &ServerFacts) -> ProcessMemory {
    let rss = resident_bytes();
    let allocator = facts.allocator_figures.map(|figures| figures());
    let used = allocator.map_or(rss, |a| a.allocated_bytes);
    let peak = allocator.map_or(used, |a| a.peak_allocated_bytes.max(used));
    ProcessMemory {
        used,
        peak,
        rss,
        allocator,
    }
}

/// `a / b` as Redis's C floats (0 when either is 0: not measured).
pub(crate) fn quotient(a: u64, b: u64) -> f32 {
    if a == 0 || b == 0 {
        0.0
    } else {
        a as f32 / b as f32
    }
}

/// `a - b` as a signed figure (0 when either is 0: not measured).
pub(crate) fn difference(a: u64, b: u64) -> i64 {
    if a == 0 || b == 0 {
        0
    } else {
        i64::try_from(i128::from(a) - i128::from(b)).unwrap_or(0)
    }
}

/// `part` as a percentage of `whole`, as Redis prints it (`12.34%`).
fn percent(part: u64, whole: u64) -> String {
    let p = if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    };
    format!("{p:.2}%")
}

/// Physical memory of the machine in bytes (0 when unknown).
fn total_system_memory() -> u64 {
    // SAFETY: sysconf only reads configuration values.
    let (pages, page) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    u64::try_from(pages)
        .unwrap_or(0)
        .saturating_mul(u64::try_from(page).unwrap_or(0))
}

fn persistence(input: &InfoInput<'_>, out: &mut String) {
    let status = input.status;
    // Redis's RDB is dkv's snapshot; its AOF is the WAL, always on and
    // fsynced before a write is acknowledged (appendfsync always).
    let last_save = last_save_unix_secs(input.facts);
    field(out, "loading", u8::from(status.loading));
    field(out, "async_loading", 0);
    field(
        out,
        "rdb_changes_since_last_save",
        status
            .last_applied
            .0
            .saturating_sub(status.snapshot_index.0),
    );
    field(out, "rdb_bgsave_in_progress", 0);
    field(out, "rdb_last_save_time", last_save);
    field(out, "rdb_last_bgsave_status", "ok");
    field(out, "rdb_last_bgsave_time_sec", -1);
    field(out, "rdb_current_bgsave_time_sec", -1);
    field(out, "rdb_snapshot_index", status.snapshot_index);
    field(out, "aof_enabled", 1);
    field(out, "aof_rewrite_in_progress", 0);
    field(out, "aof_rewrite_scheduled", 0);
    field(out, "aof_last_rewrite_time_sec", -1);
    field(out, "aof_current_rewrite_time_sec", -1);
    field(out, "aof_last_bgrewrite_status", "ok");
    field(out, "aof_last_write_status", "ok");
    field(out, "aof_last_log_index", status.last_log_index);
}

/// When the newest snapshot in the data directory was written (Unix
/// seconds), or the process start when there is none: `LASTSAVE` and
/// `rdb_last_save_time` (Redis too reports its start when it never saved).
pub fn last_save_unix_secs(facts: &ServerFacts) -> u64 {
    let now = std::time::SystemTime::now();
    let started = now
        .checked_sub(facts.started_at.elapsed())
        .unwrap_or(std::time::UNIX_EPOCH);
    let newest = facts.data_dir.as_ref().and_then(|dir| {
        std::fs::read_dir(dir.join(crate::store::snapshot::SNAPSHOT_DIR_NAME))
            .ok()?
            .filter_map(Result::ok)
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with("snap-") && name.ends_with(".snap")
            })
            .filter_map(|e| e.metadata().ok()?.modified().ok())
            .max()
    });
    newest
        .unwrap_or(started)
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn stats(input: &InfoInput<'_>, out: &mut String) {
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    let stats = input.stats;
    let traffic =
        |pick: fn(&Stats) -> &std::sync::atomic::AtomicU64| stats.map_or(0, |s| load(pick(s)));
    let (ops, input_kbps, output_kbps) = stats.map_or((0, 0.0, 0.0), Stats::rates);
    let limits =
        |pick: fn(&crate::server::client_limits::LimitStats) -> &std::sync::atomic::AtomicU64| {
            input.client_stats.map_or(0, |s| load(pick(s)))
        };
    let kv = &input.kv.stats;
    field(
        out,
        "total_connections_received",
        traffic(|s| &s.traffic.connections_received),
    );
    field(
        out,
        "total_commands_processed",
        stats.map_or(0, Stats::commands_processed),
    );
    field(out, "instantaneous_ops_per_sec", ops);
    field(
        out,
        "total_net_input_bytes",
        traffic(|s| &s.traffic.net_input_bytes),
    );
    field(
        out,
        "total_net_output_bytes",
        traffic(|s| &s.traffic.net_output_bytes),
    );
    field(
        out,
        "instantaneous_input_kbps",
        format_args!("{input_kbps:.2}"),
    );
    field(
        out,
        "instantaneous_output_kbps",
        format_args!("{output_kbps:.2}"),
    );
    field(
        out,
        "rejected_connections",
        traffic(|s| &s.traffic.rejected_connections),
    );
    field(out, "expired_keys", kv.expired_keys);
    field(out, "evicted_keys", kv.evicted_keys);
    // evicted_clients is Redis 7.0's; the two disconnection counts are
    // Redis 7.2's names for the same events.
    field(out, "evicted_clients", limits(|s| &s.evicted_clients));
    field(
        out,
        "client_query_buffer_limit_disconnections",
        limits(|s| &s.query_limit_disconnections),
    );
    field(
        out,
        "client_output_buffer_limit_disconnections",
        limits(|s| &s.output_limit_disconnections),
    );
    field(out, "keyspace_hits", input.kv.keyspace_hits);
    field(out, "keyspace_misses", input.kv.keyspace_misses);
    // Cluster-wide, like PUBSUB NUMPAT/CHANNELS: the replicated registry.
    field(out, "pubsub_channels", input.kv.pubsub_channels);
    field(out, "pubsub_patterns", input.kv.pubsub_patterns);
    field(out, "pubsubshard_channels", input.kv.pubsub_shard_channels);
    field(out, "total_forks", 0);
    field(out, "tracking_total_keys", input.tracking.keys);
    field(out, "tracking_total_items", input.tracking.items);
    field(out, "tracking_total_prefixes", input.tracking.prefixes);
    field(
        out,
        "total_error_replies",
        stats.map_or(0, Stats::total_error_replies),
    );
    field(out, "unexpected_error_replies", 0);
}

/// The leader's RESP host and port as this node knows them (INFO's
/// `master_host`/`master_port`, ROLE's master), if it knows them.
pub(crate) fn leader_host_port(status: &NodeStatus) -> Option<(&str, &str)> {
    status.leader_resp_addr.as_deref()?.rsplit_once(':')
}

/// A follower's RESP ip and port as INFO and ROLE list it (empty and 0
/// when its address is not known).
pub(crate) fn replica_ip_port(follower: &crate::node::FollowerStatus) -> (String, u16) {
    follower
        .resp_addr
        .map_or((String::new(), 0), |a| (a.ip().to_string(), a.port()))
}

fn replication(input: &InfoInput<'_>, out: &mut String) {
    let status = input.status;
    let leader = status.role == Role::Leader;
    field(out, "role", if leader { "master" } else { "slave" });
    if !leader {
        let (host, port) = leader_host_port(status).unwrap_or(("", ""));
        field(out, "master_host", host);
        field(out, "master_port", port);
        field(
            out,
            "master_link_status",
            if status.leader.is_some() {
                "up"
            } else {
                "down"
            },
        );
        field(out, "slave_repl_offset", status.last_applied);
        field(out, "slave_read_only", 0);
    }
    field(out, "connected_slaves", status.followers.len());
    for (n, follower) in status.followers.iter().enumerate() {
        let (ip, port) = replica_ip_port(follower);
        field(
            out,
            &format!("slave{n}"),
            format_args!(
                "ip={ip},port={port},state=online,offset={},lag={}",
                follower.match_index, follower.last_heard_secs
            ),
        );
    }
    field(
        out,
        "master_failover_state",
        if input.failover_running {
            "failover-in-progress"
        } else {
            "no-failover"
        },
    );
    field(out, "master_replid", &input.facts.run_id);
    field(out, "master_repl_offset", status.last_log_index);
    field(out, "second_repl_offset", -1);
}

fn cpu(out: &mut String) {
    let usage = |who| {
        // SAFETY: getrusage fills the zeroed struct it is given.
        unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            if libc::getrusage(who, &mut usage) != 0 {
                return (0.0, 0.0);
            }
            let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1_000_000.0;
            (seconds(usage.ru_stime), seconds(usage.ru_utime))
        }
    };
    let (sys, user) = usage(libc::RUSAGE_SELF);
    let (sys_children, user_children) = usage(libc::RUSAGE_CHILDREN);
    field(out, "used_cpu_sys", format_args!("{sys:.6}"));
    field(out, "used_cpu_user", format_args!("{user:.6}"));
    field(
        out,
        "used_cpu_sys_children",
        format_args!("{sys_children:.6}"),
    );
    field(
        out,
        "used_cpu_user_children",
        format_args!("{user_children:.6}"),
    );
}

fn commandstats(input: &InfoInput<'_>, out: &mut String) {
    for c in input.stats.map(Stats::commands).unwrap_or_default() {
        let per_call = if c.calls == 0 {
            0.0
        } else {
            c.usec as f64 / c.calls as f64
        };
        field(
            out,
            &format!("cmdstat_{}", c.name),
            format_args!(
                "calls={},usec={},usec_per_call={per_call:.2},rejected_calls={},failed_calls={}",
                c.calls, c.usec, c.rejected, c.failed
            ),
        );
    }
}

fn latencystats(input: &InfoInput<'_>, out: &mut String) {
    let Some(stats) = input.stats else {
        return;
    };
    for (name, histogram) in stats.histograms() {
        if histogram.total() == 0 {
            continue;
        }
        let values = histogram.percentiles(&PERCENTILES);
        let _ = write!(out, "latency_percentiles_usec_{name}:");
        for (i, (p, v)) in PERCENTILES.iter().zip(values).enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "p{p}={v}.000");
        }
        out.push_str("\r\n");
    }
}

fn raft(input: &InfoInput<'_>, out: &mut String) {
    let status = input.status;
    field(out, "raft_node_id", status.id);
    field(out, "raft_role", raft_role(status.role));
    field(out, "raft_term", status.term);
    field(
        out,
        "raft_leader",
        status.leader.map(|l| l.to_string()).unwrap_or_default(),
    );
    field(
        out,
        "raft_leader_resp_addr",
        status.leader_resp_addr.clone().unwrap_or_default(),
    );
    field(out, "raft_commit_index", status.commit_index);
    field(out, "raft_last_applied", status.last_applied);
    field(out, "raft_last_log_index", status.last_log_index);
    field(out, "raft_snapshot_index", status.snapshot_index);
    field(out, "raft_voters", status.voters);
    let learners = input.members.iter().filter(|m| !m.voter).count();
    field(out, "raft_learners", learners);
    for (n, m) in input.members.iter().enumerate() {
        field(
            out,
            &format!("raft_member{n}"),
            format_args!(
                "id={},role={},resp_addr={},http_addr={}",
                m.id,
                if m.voter { "voter" } else { "learner" },
                m.resp_addr,
                m.http_addr
            ),
        );
    }
    field(out, "raft_leader_changes", status.leader_changes);
    field(out, "loading", u8::from(status.loading));
}

fn title(section: &str) -> &'static str {
    match section {
        "server" => "Server",
        "clients" => "Clients",
        "memory" => "Memory",
        "persistence" => "Persistence",
        "stats" => "Stats",
        "replication" => "Replication",
        "cpu" => "CPU",
        "modules" => "Modules",
        "commandstats" => "Commandstats",
        "errorstats" => "Errorstats",
        "latencystats" => "Latencystats",
        "cluster" => "Cluster",
        "raft" => "Raft",
        "keyspace" => "Keyspace",
        _ => "",
    }
}

/// Redis's `*_human` memory figures (`1.50M`).
fn human_bytes(n: u64) -> String {
    let n = n as f64;
    if n >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}G", n / (1024.0 * 1024.0 * 1024.0))
    } else if n >= 1024.0 * 1024.0 {
        format!("{:.2}M", n / (1024.0 * 1024.0))
    } else if n >= 1024.0 {
        format!("{:.2}K", n / 1024.0)
    } else {
        format!("{n}B")
    }
}

/// This process's resident set in bytes (`/proc/self/statm`), 0 where that
/// cannot be read.
pub(crate) fn resident_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    // SAFETY: sysconf only reads a configuration value.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages.saturating_mul(u64::try_from(page).unwrap_or(0))
}
