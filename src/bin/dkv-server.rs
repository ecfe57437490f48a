//! `dkv-server`: parse flags, load the config, start a node and its listeners, and
//! run until SIGINT/SIGTERM or a fatal node error (a failed fsync, say).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{error, info};

use dkv::config::{Config, Overrides};
use dkv::metrics::{self, Metrics};
use dkv::node::{Node, TestFault};
use dkv::server;

/// mimalloc instead of glibc malloc: glibc's per-thread arenas grow and shrink
/// with an `mprotect` per step, which a profile of SET traffic showed as one of
/// the node's most frequent syscalls (bench/PERFORMANCE.md).
/// Wrapped to count live bytes, INFO's `used_memory` (`metrics::alloc`).
#[global_allocator]
static GLOBAL: dkv::metrics::alloc::Counting<mimalloc::MiMalloc> =
    dkv::metrics::alloc::Counting::new(mimalloc::MiMalloc);

/// `mi_option_purge_delay`: its place in `mimalloc.h`'s option enum (v3,
/// what the `mimalloc` crate builds unless its `v2` feature is on); the
/// binding names the option after it but not this one. A test checks
/// that the option at this place has the purge delay's default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Pages mimalloc frees go back to the kernel at once, not after its
/// default 1,000 ms: a delayed purge waits for the allocator's next
/// collection, which a node that went quiet after a burst (a load's log
/// compacted, a snapshot's buffers) does not run, and the pages stayed
/// resident (5 s after a load, RSS had not moved). After 1M SETs the
/// leader's RSS read 274-346 MiB with the delay and 255-259 MiB without
/// it, used_memory 212-217 MiB in both, and CPU per SET did not grow
/// (bench/PERFORMANCE.md). `MIMALLOC_PURGE_DELAY` still decides when
/// it is set.
fn purge_freed_pages_at_once() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mi_option_set takes no pointers; an option is a plain
        // value mimalloc reads when it decides to purge.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
}

/// The most live bytes seen by [`allocator_figures`].
static PEAK_ALLOCATED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

extern "C" {
    /// mimalloc's process figures (`mimalloc.h`); linked with the allocator
    /// (the Rust binding declares it only behind a feature).
    fn mi_process_info(
        elapsed_msecs: *mut usize,
        user_msecs: *mut usize,
        system_msecs: *mut usize,
        current_rss: *mut usize,
        peak_rss: *mut usize,
        current_commit: *mut usize,
        peak_commit: *mut usize,
        page_faults: *mut usize,
    );
}

/// The live bytes (INFO's `used_memory`) and mimalloc's committed memory
/// (`allocator_active`).
fn allocator_figures() -> server::info::AllocatorFigures {
    let mut out = [0usize; 8];
    let [a, b, c, d, e, commit, g, f] = &mut out;
    // SAFETY: mi_process_info writes one usize through each pointer, all
    // valid and distinct for the call.
    unsafe { mi_process_info(a, b, c, d, e, commit, g, f) };
    let allocated = GLOBAL.allocated_bytes();
    let peak = PEAK_ALLOCATED
        .fetch_max(allocated, std::sync::atomic::Ordering::Relaxed)
        .max(allocated);
    server::info::AllocatorFigures {
        allocated_bytes: allocated,
        peak_allocated_bytes: peak,
        committed_bytes: *commit as u64,
    }
}

/// Transparent huge pages off for this process, as Redis turns them off for
/// itself (`disable-thp yes`). mimalloc asks the kernel for huge pages on its
/// arenas, and the kernel then zeroes 2 MiB at a time each time the allocator
/// touches memory it had handed back: a 1M-key load spent 28% of the
/// leader's CPU and 40% of a follower's in `clear_page`, and with huge pages
/// off it took 30% less CPU and time (bench/PERFORMANCE.md). The flag is the
/// process's, so it also overrides mimalloc's `madvise(MADV_HUGEPAGE)`.
fn disable_transparent_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments and touches no
    // memory of this process.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if rc != 0 {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "could not turn transparent huge pages off; memory growth will cost more CPU"
        );
    }
}

/// A Redis-protocol-compatible, Raft-replicated cache server.
#[derive(Parser, Debug)]
#[command(name = "dkv-server", version, about)]
struct Args {
    /// The node's YAML config (see configs/example.yaml).
    #[arg(long, short = 'c')]
    config: PathBuf,
    /// Override `id`.
    #[arg(long)]
    id: Option<u64>,
    /// Override `resp_addr` (RESP listen address).
    #[arg(long)]
    resp_addr: Option<SocketAddr>,
    /// Override `http_addr` (peer RPC, /metrics, /status).
    #[arg(long)]
    http_addr: Option<SocketAddr>,
    /// Override `data_dir`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Override `cluster_id`.
    #[arg(long)]
    cluster_id: Option<String>,
    /// Seed this node's empty data directory from a backup taken with
    /// `dkv-cli backup`, then start. Restore the same file on every voter of
    /// the new cluster.
    #[arg(long, value_name = "FILE")]
    restore: Option<PathBuf>,
    /// Join a running cluster through any member's operator address
    /// (HOST:PORT): on an empty data directory the node asks the leader to
    /// add it as a learner (with this config's admin token) unless it is a
    /// member already, then catches up from the leader. Ignored once the data
    /// directory holds data. Promote it with `dkv-cli member promote ID`.
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "restore")]
    join: Option<String>,
    /// TESTS ONLY: break linearizability on purpose, to show the fault-testing
    /// checkers catch it (`stale-reads` or `early-ack`).
    #[arg(long, hide = true, value_enum)]
    unsafe_test_fault: Option<UnsafeTestFault>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum UnsafeTestFault {
    /// Serve reads from the local map without a ReadIndex.
    StaleReads,
    /// Acknowledge writes before they commit.
    EarlyAck,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    purge_freed_pages_at_once();
    disable_transparent_huge_pages();
    let overrides = Overrides {
        id: args.id,
        resp_addr: args.resp_addr,
        http_addr: args.http_addr,
        data_dir: args.data_dir,
        cluster_id: args.cluster_id,
    };
    let config = match Config::load_with_overrides(&args.config, overrides) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("dkv-server: invalid config: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(file) = &args.restore {
        let mut voters: Vec<dkv::raft::NodeId> = config
            .peers
            .iter()
            .map(|p| dkv::raft::NodeId(p.id))
            .collect();
        voters.push(dkv::raft::NodeId(config.id));
        match dkv::node::restore_backup(&config.data_dir, file, &voters) {
            Ok(header) => info!(
                file = %file.display(),
                from_cluster = %header.cluster_id,
                index = header.index,
                term = header.term,
                taken_unix_ms = header.unix_ms,
                "data directory seeded from the backup"
            ),
            Err(e) => {
                eprintln!("dkv-server: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    // A fresh data directory: join, or make sure this is not a member that
    // lost its data (`node::startup`).
    let fresh = dkv::node::startup::is_fresh(&config.data_dir);
    let mut join = None;
    if let Some(seed) = args.join.as_deref().filter(|_| fresh) {
        let token = match config.admin_token_path.as_deref().map(read_admin_token) {
            Some(Ok(token)) => Some(String::from_utf8_lossy(&token).into_owned()),
            Some(Err(e)) => {
                eprintln!("dkv-server: {e:#}");
                return ExitCode::FAILURE;
            }
            None => None,
        };
        match dkv::node::startup::join(&config, seed, token.as_deref()) {
            Ok(peers) => join = Some(peers),
            Err(e) => {
                eprintln!("dkv-server: --join: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else if args.restore.is_none() && fresh {
        if let Err(e) = dkv::node::startup::refuse_emptied_member(&config) {
            eprintln!("dkv-server: {e}");
            return ExitCode::FAILURE;
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("dkv-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let fault = args.unsafe_test_fault.map(|fault| match fault {
        UnsafeTestFault::StaleReads => TestFault::StaleReads,
        UnsafeTestFault::EarlyAck => TestFault::EarlyAck,
    });
    match runtime.block_on(run(config, args.config, fault, join)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            eprintln!("dkv-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(
    config: Config,
    config_path: PathBuf,
    fault: Option<TestFault>,
    join: Option<Vec<(dkv::raft::NodeId, SocketAddr)>>,
) -> anyhow::Result<()> {
    let prometheus = metrics::install().context("installing the metrics recorder")?;
    let metrics = Metrics::new();
    let resp_listener = TcpListener::bind(config.resp_addr)
        .await
        .with_context(|| format!("cannot listen on resp_addr {}", config.resp_addr))?;
    let http_listener = TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("cannot listen on http_addr {}", config.http_addr))?;
    let metrics_listener = match config.metrics_addr {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on metrics_addr {addr}"))?,
        ),
        None => None,
    };
    // Loaded before the node starts, so a missing or bad file fails the start
    // with its name.
    let tls_resp = match (config.tls_resp_addr, &config.client_tls) {
        (Some(addr), Some(tls)) => {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on tls_resp_addr {addr}"))?;
            let tls = server::TlsListener::load(
                tls,
                Duration::from_millis(config.http.refused_log_interval_ms),
            )
            .context("cannot load client_tls")?;
            Some((listener, tls))
        }
        _ => None,
    };
    let admin_token = match &config.admin_token_path {
        Some(path) => Some(read_admin_token(path)?),
        None => None,
    };
    if config.insecure_peer_rpc && !config.peers.is_empty() {
        tracing::warn!(
            http = %config.http_addr,
            "INSECURE PEER RPC: insecure_peer_rpc is true, so anyone who can reach http_addr \
             can act as a cluster member (move leadership, raise the term, write keys). \
             Use peer_tls outside tests and trusted networks."
        );
    }
    let mut node = Node::start_with(&config, metrics.clone(), fault, join)
        .await
        .with_context(|| {
            format!(
                "cannot start node {} with data_dir {}",
                config.id,
                config.data_dir.display()
            )
        })?;
    info!(
        id = config.id,
        cluster = %config.cluster_id,
        resp = %config.resp_addr,
        http = %config.http_addr,
        metrics = ?config.metrics_addr,
        peer_mtls = config.peer_tls.is_some(),
        tls_resp = ?config.tls_resp_addr,
        data_dir = %config.data_dir.display(),
        peers = config.peers.len(),
        "dkv-server started"
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    // Histograms are only drained by upkeep when the recorder has no HTTP listener.
    let upkeep = prometheus.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });

    // Two maximal election timeouts: the target campaigns at once, but a lost
    // TimeoutNow falls back to an ordinary election.
    let transfer_timeout = Duration::from_millis(
        config.raft.tick_ms * u64::from(config.raft.election_timeout_max_ticks) * 2,
    );
    let mut facts = server::info::ServerFacts::new(
        config.resp_addr.port(),
        Some(config.http_addr),
        Some(config_path),
        config.limits.max_clients,
    );
    facts.mem_allocator = "mimalloc";
    facts.allocator_figures = Some(allocator_figures);
    facts.data_dir = Some(config.data_dir.clone());
    let context = server::ServerContext::new(node.handle(), config.limits.clone(), metrics, facts)
        .with_auth(config.auth.clone());
    let handle = node.handle();
    let http_state = server::http::HttpState {
        node: node.handle(),
        prometheus: Some(prometheus),
        exposition: Some(context.clone()),
        max_body_bytes: config
            .raft
            .max_bytes_per_append
            .saturating_mul(2)
            .max(64 << 20),
        transfer_timeout,
        admin_token,
        limits: server::http::HttpLimits {
            header_read_timeout: Duration::from_millis(config.http.header_read_timeout_ms),
            max_connections: config.http.max_connections,
            max_admin_body_bytes: config.http.max_admin_body_bytes,
        },
        refused: Arc::new(server::http::RefusedLog::new(
            "http requests",
            Duration::from_millis(config.http.refused_log_interval_ms),
        )),
        clients: Some(context.clients()),
        backups: Arc::new(tokio::sync::Semaphore::new(1)),
    };
    if let Some(listener) = metrics_listener {
        tokio::spawn(server::http::serve(
            listener,
            http_state.clone(),
            server::http::Routes::Operator,
            None,
            stopped(stop_rx.clone()),
        ));
    }
    let http = tokio::spawn(server::http::serve(
        http_listener,
        http_state,
        server::http::Routes::Peer,
        node.handle().peer_tls_server(),
        stopped(stop_rx.clone()),
    ));
    tokio::spawn(server::apply_requirepass(context.clone()));
    if let Some((listener, tls)) = tls_resp {
        tokio::spawn(server::serve_tls(
            listener,
            context.clone(),
            tls,
            stopped(stop_rx.clone()),
        ));
    }
    let asked = context.clone();
    let resp = tokio::spawn(server::serve(
        resp_listener,
        context,
        stopped(stop_rx.clone()),
    ));

    let outcome = tokio::select! {
        signal = shutdown_signal() => {
            info!(signal, "shutting down");
            hand_over_leadership(&handle, !config.peers.is_empty(), transfer_timeout).await;
            Ok(())
        }
        how = asked.shutdown_requested() => {
            info!(now = how.now, save = how.save, "shutting down: a client sent SHUTDOWN");
            if how.save {
                save_before_exit(&handle).await;
            }
            if !how.now {
                hand_over_leadership(&handle, !config.peers.is_empty(), transfer_timeout).await;
            }
            Ok(())
        }
        fatal = node.wait() => Err(match fatal {
            Ok(()) => anyhow::anyhow!("the node driver stopped unexpectedly"),
            Err(e) => anyhow::Error::new(e).context("the node stopped"),
        }),
    };
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = resp.await;
        let _ = http.await;
    })
    .await;
    if outcome.is_ok() {
        node.shutdown().await.context("stopping the node")?;
    }
    outcome
}

/// A leader that just vanished costs the cluster an election timeout of
/// unavailability; handing over first costs one round trip.
async fn hand_over_leadership(handle: &dkv::node::NodeHandle, has_peers: bool, timeout: Duration) {
    if handle.status().role == dkv::raft::Role::Leader && has_peers {
        match handle.transfer_leader(None, timeout).await {
            Ok(to) => info!(to = to.0, "leadership transferred before exit"),
            Err(e) => tracing::warn!(error = %e, "leadership transfer before exit failed"),
        }
    }
}

/// `SHUTDOWN SAVE`: a snapshot of the map before the node stops (the WAL
/// already holds every write; this only shortens the next start's replay).
async fn save_before_exit(handle: &dkv::node::NodeHandle) {
    let saved = match handle.snapshot_now(false).await {
        Some(dkv::node::SnapshotStart::Started(done)) => done.await.is_ok(),
        Some(dkv::node::SnapshotStart::Current) => true,
        Some(dkv::node::SnapshotStart::InProgress { .. }) | None => false,
    };
    if saved {
        info!("snapshot written before exit");
    } else {
        tracing::warn!(
            "no snapshot written before exit (one was being written, or the node stopped)"
        );
    }
}

/// Reads the admin bearer token: the file's content without surrounding
/// whitespace, which must not be empty.
fn read_admin_token(path: &std::path::Path) -> anyhow::Result<Arc<[u8]>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("admin_token_path {}: cannot read", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        anyhow::bail!("admin_token_path {}: the file is empty", path.display());
    }
    Ok(Arc::from(token.as_bytes()))
}

/// Resolves with the name of the first SIGINT or SIGTERM.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option set by [`purge_freed_pages_at_once`] is the purge delay:
    /// the option before `use_numa_nodes` (which the binding names) has the
    /// purge delay's default, 1,000 (ms).
    #[test]
    fn the_purge_delay_is_the_option_at_its_place() {
        assert_eq!(
            MI_OPTION_PURGE_DELAY + 1,
            libmimalloc_sys::mi_option_use_numa_nodes
        );
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: reads a plain option value.
            assert_eq!(
                unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) },
                1000
            );
        }
    }
}
