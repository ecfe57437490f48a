//! The facts a node shows about itself (`INFO`, `HELLO`) and the INFO text.
//!
//! INFO answers in Redis's format (`# Section\r\nfield:value\r\n`, sections
//! separated by an empty line) with an extra `# Raft` section. It never waits for
//! the cluster: it reads the node's status and the local key count, so it
//! answers during WAL replay (`loading:1`), which ioredis relies on.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

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

/// The INFO sections, in output order. `default`/`all`/`everything` (or no
/// argument) select all of them.
pub const SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "raft",
    "keyspace",
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
    /// Clients closed by client limits (None: all zero).
    pub client_stats: Option<&'a crate::server::client_limits::LimitStats>,
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

/// Which sections the INFO arguments select (unknown names select nothing, as
/// in Redis).
pub fn select_sections(args: &[&[u8]]) -> Vec<&'static str> {
    let all = args.is_empty()
        || args.iter().any(|a| {
            a.eq_ignore_ascii_case(b"default")
                || a.eq_ignore_ascii_case(b"all")
                || a.eq_ignore_ascii_case(b"everything")
        });
    SECTIONS
        .iter()
        .copied()
        .filter(|s| all || args.iter().any(|a| a.eq_ignore_ascii_case(s.as_bytes())))
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

fn render_section(section: &str, input: &InfoInput<'_>, out: &mut String) {
    let facts = input.facts;
    let status = input.status;
    out.push_str("# ");
    out.push_str(title(section));
    out.push_str("\r\n");
    let mut field = |name: &str, value: &dyn std::fmt::Display| {
        out.push_str(name);
        out.push(':');
        out.push_str(&value.to_string());
        out.push_str("\r\n");
    };
    match section {
        "server" => {
            let uptime = facts.started_at.elapsed().as_secs();
            field("redis_version", &REDIS_COMPAT_VERSION);
            field("dkv_version", &facts.version);
            field("redis_mode", &"standalone");
            field("arch_bits", &(usize::BITS));
            field("process_id", &std::process::id());
            field("run_id", &facts.run_id);
            field("tcp_port", &facts.tcp_port);
            field(
                "http_addr",
                &facts.http_addr.map(|a| a.to_string()).unwrap_or_default(),
            );
            field("uptime_in_seconds", &uptime);
            field("uptime_in_days", &(uptime / 86_400));
            field(
                "config_file",
                &facts
                    .config_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            );
        }
        "clients" => {
            field("connected_clients", &input.connected_clients);
            field("maxclients", &facts.max_clients);
            field("blocked_clients", &0);
        }
        "memory" => {
            let kv = input.kv;
            // used_memory is the replicated estimate of the data that
            // maxmemory is enforced against (identical on every replica, so
            // every replica evicts alike); the process's real footprint is
            // used_memory_rss.
            let rss = resident_bytes();
            field("used_memory", &kv.used_memory);
            field("used_memory_human", &human_bytes(kv.used_memory));
            field("used_memory_rss", &rss);
            field("used_memory_rss_human", &human_bytes(rss));
            field("used_memory_dataset", &kv.used_memory);
            field("maxmemory", &kv.maxmemory);
            field("maxmemory_human", &human_bytes(kv.maxmemory));
            field("maxmemory_policy", &kv.policy);
            field("mem_allocator", &facts.mem_allocator);
        }
        "persistence" => {
            field("loading", &u8::from(status.loading));
            field("async_loading", &0);
            field("rdb_changes_since_last_save", &0);
            field("rdb_bgsave_in_progress", &0);
            field("aof_enabled", &0);
            field("aof_rewrite_in_progress", &0);
        }
        "stats" => {
            field("expired_keys", &input.kv.stats.expired_keys);
            field("evicted_keys", &input.kv.stats.evicted_keys);
            field("keyspace_hits", &0);
            field("keyspace_misses", &0);
            let count = |pick: fn(
                &crate::server::client_limits::LimitStats,
            ) -> &std::sync::atomic::AtomicU64| {
                input.client_stats.map_or(0, |stats| {
                    pick(stats).load(std::sync::atomic::Ordering::Relaxed)
                })
            };
            // evicted_clients is Redis 7.0's; the two disconnection counts
            // are Redis 7.2's names for the same events.
            field("evicted_clients", &count(|s| &s.evicted_clients));
            field(
                "client_query_buffer_limit_disconnections",
                &count(|s| &s.query_limit_disconnections),
            );
            field(
                "client_output_buffer_limit_disconnections",
                &count(|s| &s.output_limit_disconnections),
            );
        }
        "replication" => {
            let leader = status.role == Role::Leader;
            field("role", &if leader { "master" } else { "slave" });
            if !leader {
                let (host, port) = status
                    .leader_resp_addr
                    .as_deref()
                    .and_then(|a| a.rsplit_once(':'))
                    .unwrap_or(("", ""));
                field("master_host", &host);
                field("master_port", &port);
                field(
                    "master_link_status",
                    &if status.leader.is_some() {
                        "up"
                    } else {
                        "down"
                    },
                );
            }
            field("connected_slaves", &0);
        }
        "raft" => {
            field("raft_node_id", &status.id);
            field("raft_role", &raft_role(status.role));
            field("raft_term", &status.term);
            field(
                "raft_leader",
                &status.leader.map(|l| l.to_string()).unwrap_or_default(),
            );
            field(
                "raft_leader_resp_addr",
                &status.leader_resp_addr.clone().unwrap_or_default(),
            );
            field("raft_commit_index", &status.commit_index);
            field("raft_last_applied", &status.last_applied);
            field("raft_last_log_index", &status.last_log_index);
            field("raft_leader_changes", &status.leader_changes);
            field("loading", &u8::from(status.loading));
        }
        "keyspace" => {
            for (db, keys, expires, avg_ttl) in &input.kv.keyspace {
                field(
                    &format!("db{db}"),
                    &format_args!("keys={keys},expires={expires},avg_ttl={avg_ttl}"),
                );
            }
        }
        _ => {}
    }
}

fn title(section: &str) -> &'static str {
    match section {
        "server" => "Server",
        "clients" => "Clients",
        "memory" => "Memory",
        "stats" => "Stats",
        "persistence" => "Persistence",
        "replication" => "Replication",
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
