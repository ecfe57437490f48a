//! `Cluster`: n real `dkv-server` processes on loopback.
//!
//! Ports come from binding port 0 and releasing it, so another process may grab one
//! before the server binds it; `start` then retries the whole cluster with fresh ports.
//! Each node's config, data directory and log (stdout + stderr, appended across
//! restarts with a marker line) live in one temp dir. Unless the test ends with
//! [`Cluster::shutdown`], dropping the cluster prints the tail of every node's log, so a
//! failing test (panic or `?`) shows what the servers said. `DKV_KEEP_LOGS=1` keeps the
//! temp dir and prints its path.
//!
//! Every cluster runs peer RPC over mutual TLS unless asked otherwise
//! ([`ClusterOptions::insecure_peer_rpc`], or `insecure_peer_rpc` in a node's
//! `extra_yaml`): the harness makes a CA and one certificate per node with
//! `dkv::tls` in `<dir>/certs`. Each node also gets an operator port
//! (`metrics_addr`, plain HTTP) that the harness uses for `/status`, and an
//! admin token ([`Cluster::admin_token_path`]).

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use redis::aio::MultiplexedConnection;
use tempfile::TempDir;
use tokio::time::Instant;

use crate::process::{self, POLL};
use crate::proxy::{LinkMode, ProxyMesh};
use crate::status::Status;

/// How long `start` waits for a leader everyone agrees on.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a node may take to answer `/status` after spawn (WAL replay included).
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a graceful stop may take before the node is killed and the stop fails.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on one `/status` request.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);
/// Attempts at starting a cluster when a port turns out to be taken.
const START_ATTEMPTS: usize = 3;
/// Lines of each node's log printed on failure.
const LOG_TAIL_LINES: usize = 60;

/// One node's config, written as YAML in the shape `dkv-server --config` reads.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Raft id (non-zero).
    pub id: u64,
    /// Cluster name.
    pub cluster_id: String,
    /// RESP listen address.
    pub resp_addr: SocketAddr,
    /// HTTP listen address.
    pub http_addr: SocketAddr,
    /// WAL directory.
    pub data_dir: PathBuf,
    /// `(id, resp_addr, http_addr)` of every other member.
    pub peers: Vec<(u64, SocketAddr, SocketAddr)>,
    /// `raft.tick_ms`.
    pub tick_ms: u64,
    /// `limits.request_timeout_ms`.
    pub request_timeout_ms: u64,
    /// `limits.max_bulk_len_bytes`.
    pub max_bulk_len_bytes: u64,
    /// Extra top-level YAML appended verbatim (e.g. an unknown key, for bad-config tests).
    pub extra_yaml: String,
    /// Extra `raft:` keys, as flow-map entries (e.g. `snapshot_every_entries: 500`).
    pub raft_extra: String,
    /// Extra `limits:` keys, as flow-map entries (e.g.
    /// `client_output_buffer_limit: "normal 64mb 32mb 10"`).
    pub limits_extra: String,
    /// `metrics_addr`: the plain operator port (`/status`, `/metrics`, `/admin/*`).
    pub metrics_addr: Option<SocketAddr>,
    /// `peer_tls`; `None` with peers writes `insecure_peer_rpc: true` (unless
    /// `extra_yaml` sets that key itself).
    pub peer_tls: Option<PeerTlsPaths>,
    /// `admin_token_path`.
    pub admin_token_path: Option<PathBuf>,
    /// A free address reserved for `tls_resp_addr`; written only with `client_tls`.
    pub tls_resp_addr: SocketAddr,
    /// `client_tls` (and `tls_resp_addr`): a TLS RESP listener.
    pub client_tls: Option<ClientTlsPaths>,
}

/// A node's TLS RESP listener settings (`client_tls` in its config).
#[derive(Debug, Clone)]
pub struct ClientTlsPaths {
    /// The server certificate presented to clients.
    pub cert_path: PathBuf,
    /// Its key.
    pub key_path: PathBuf,
    /// The CA client certificates must chain to.
    pub ca_cert_path: Option<PathBuf>,
    /// `no`, `optional` or `yes`.
    pub auth_clients: String,
}

/// A node's peer TLS files (`peer_tls` in its config).
#[derive(Debug, Clone)]
pub struct PeerTlsPaths {
    /// The cluster CA certificate.
    pub ca_cert_path: PathBuf,
    /// The node's certificate.
    pub cert_path: PathBuf,
    /// The node's key.
    pub key_path: PathBuf,
}

impl NodeConfig {
    /// The YAML text.
    pub fn to_yaml(&self) -> String {
        let mut y = String::new();
        let q = |s: &str| serde_json::to_string(s).expect("a string always serializes");
        // Writing to a String cannot fail.
        let _ = writeln!(y, "id: {}", self.id);
        let _ = writeln!(y, "cluster_id: {}", q(&self.cluster_id));
        let _ = writeln!(y, "resp_addr: {}", self.resp_addr);
        let _ = writeln!(y, "http_addr: {}", self.http_addr);
        let _ = writeln!(y, "data_dir: {}", q(&self.data_dir.to_string_lossy()));
        if self.peers.is_empty() {
            let _ = writeln!(y, "peers: []");
        } else {
            let _ = writeln!(y, "peers:");
            for (id, resp, http) in &self.peers {
                let _ = writeln!(
                    y,
                    "  - {{ id: {id}, resp_addr: {resp}, http_addr: {http} }}"
                );
            }
        }
        let raft_extra = if self.raft_extra.is_empty() {
            String::new()
        } else {
            format!(", {}", self.raft_extra)
        };
        let _ = writeln!(
            y,
            "raft: {{ tick_ms: {}, election_timeout_min_ticks: 30, election_timeout_max_ticks: 60, heartbeat_interval_ticks: 5{raft_extra} }}",
            self.tick_ms
        );
        let limits_extra = if self.limits_extra.is_empty() {
            String::new()
        } else {
            format!(", {}", self.limits_extra)
        };
        let _ = writeln!(
            y,
            "limits: {{ max_clients: 10000, max_bulk_len_bytes: {}, request_timeout_ms: {}{limits_extra} }}",
            self.max_bulk_len_bytes, self.request_timeout_ms
        );
        if let Some(addr) = self.metrics_addr {
            let _ = writeln!(y, "metrics_addr: {addr}");
        }
        let path = |p: &Path| q(&p.to_string_lossy());
        match &self.peer_tls {
            Some(tls) => {
                let _ = writeln!(
                    y,
                    "peer_tls: {{ ca_cert_path: {}, cert_path: {}, key_path: {} }}",
                    path(&tls.ca_cert_path),
                    path(&tls.cert_path),
                    path(&tls.key_path)
                );
            }
            None if !self.peers.is_empty() && !self.extra_yaml.contains("insecure_peer_rpc") => {
                let _ = writeln!(y, "insecure_peer_rpc: true");
            }
            None => {}
        }
        if let Some(token) = &self.admin_token_path {
            let _ = writeln!(y, "admin_token_path: {}", path(token));
        }
        if let Some(tls) = &self.client_tls {
            let _ = writeln!(y, "tls_resp_addr: {}", self.tls_resp_addr);
            let ca = tls
                .ca_cert_path
                .as_ref()
                .map(|ca| format!(", ca_cert_path: {}", path(ca)))
                .unwrap_or_default();
            let _ = writeln!(
                y,
                "client_tls: {{ cert_path: {}, key_path: {}{ca}, auth_clients: {} }}",
                path(&tls.cert_path),
                path(&tls.key_path),
                tls.auth_clients
            );
        }
        y.push_str(&self.extra_yaml);
        y
    }
}

struct Node {
    config: NodeConfig,
    config_path: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    /// SIGSTOPped by [`Cluster::pause`] and not resumed yet.
    paused: bool,
}

/// How [`Cluster::start_opts`] builds a cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Route every directed peer link through a proxy in the test process
    /// ([`crate::proxy`]), so [`Cluster::partition`] and friends can cut it.
    pub proxies: bool,
    /// Extra `dkv-server` arguments after `--config <file>` (every node, every
    /// spawn), e.g. `--unsafe-test-fault stale-reads`.
    pub server_args: Vec<String>,
    /// Plain, unauthenticated peer RPC instead of mutual TLS (tests that play a
    /// member with hand-made requests on [`Cluster::http_addr`]).
    pub insecure_peer_rpc: bool,
}

/// A running cluster of `dkv-server` processes. Node indexes are 0-based; node `i` has
/// Raft id `i + 1`.
pub struct Cluster {
    dir: Option<TempDir>,
    bin: PathBuf,
    nodes: Vec<Node>,
    leader: Option<usize>,
    clean_shutdown: bool,
    server_args: Vec<String>,
    admin_token_path: PathBuf,
    // Declared last: dropped after the nodes are killed.
    proxies: Option<ProxyMesh>,
}

/// Makes a cluster CA, a certificate for each of node ids `1..=n` (also valid
/// for 127.0.0.1) in `dir`, and an admin token in `token_path`.
fn make_credentials(dir: &Path, n: usize, token_path: &Path) -> Result<()> {
    use dkv::raft::NodeId;
    let ca = dkv::tls::generate_ca("test", 30).context("make the test cluster CA")?;
    dkv::tls::write_ca(dir, &ca, false).context("write the test cluster CA")?;
    for id in 1..=n as u64 {
        let node = dkv::tls::generate_node_cert(&ca, NodeId(id), &["127.0.0.1".to_string()], 30)
            .with_context(|| format!("make node {id}'s certificate"))?;
        dkv::tls::write_node(dir, NodeId(id), &node, false)
            .with_context(|| format!("write node {id}'s certificate"))?;
    }
    let mut random = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut random))
        .context("read /dev/urandom for the admin token")?;
    let token: String = random.iter().map(|b| format!("{b:02x}")).collect();
    dkv::tls::write_file(token_path, &token, 0o600, false).context("write the admin token")?;
    Ok(())
}

/// Free loopback ports: bind `count` listeners on port 0 at once (so they differ).
/// The ports stay bound until the listeners (the second value) are dropped, so that
/// binding other port-0 listeners meanwhile (the link proxies) cannot be given one
/// of them; drop the listeners just before the servers bind.
fn reserve_ports(count: usize) -> Result<(Vec<u16>, Vec<TcpListener>)> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0"))
        .collect::<Result<Vec<_>>>()?;
    let ports = listeners
        .iter()
        .map(|l| Ok(l.local_addr().context("local_addr")?.port()))
        .collect::<Result<_>>()?;
    Ok((ports, listeners))
}

impl Cluster {
    /// Start `n` nodes and wait until exactly one is leader and every node agrees.
    ///
    /// # Errors
    /// No binary, a node exits or never answers, or no agreed leader within
    /// [`START_TIMEOUT`]. The error carries the tail of every node's log.
    pub async fn start(n: usize) -> Result<Cluster> {
        Self::start_with(n, |_| {}).await
    }

    /// Like [`Cluster::start`], with a hook to adjust each node's config before it is
    /// written.
    ///
    /// # Errors
    /// As [`Cluster::start`].
    pub async fn start_with(n: usize, adjust: impl Fn(&mut NodeConfig)) -> Result<Cluster> {
        Self::start_opts(n, ClusterOptions::default(), adjust).await
    }

    /// Like [`Cluster::start`], with every peer link proxied (see
    /// [`ClusterOptions::proxies`]). Must run on a tokio runtime that keeps running
    /// while the test waits (a multi-thread runtime, or a current-thread one whose
    /// test never blocks the thread).
    ///
    /// # Errors
    /// As [`Cluster::start`].
    pub async fn start_with_proxies(n: usize) -> Result<Cluster> {
        let opts = ClusterOptions {
            proxies: true,
            ..ClusterOptions::default()
        };
        Self::start_opts(n, opts, |_| {}).await
    }

    /// Start `n` nodes as `opts` says, `adjust` editing each node's config (with
    /// proxies, a peer's `http_addr` in the config is already the proxy's).
    ///
    /// # Errors
    /// As [`Cluster::start`].
    pub async fn start_opts(
        n: usize,
        opts: ClusterOptions,
        adjust: impl Fn(&mut NodeConfig),
    ) -> Result<Cluster> {
        anyhow::ensure!(n >= 1, "a cluster needs at least one node");
        let bin = process::server_binary()?;
        let mut last_err = None;
        for attempt in 1..=START_ATTEMPTS {
            let mut cluster = Cluster::create(&bin, n, &opts, &adjust)?;
            match cluster.boot().await {
                Ok(()) => return Ok(cluster),
                Err(e) => {
                    // A port taken by another process ("in use"), or a clash
                    // the config check caught ("already used by").
                    let port_clash =
                        cluster.logs_mention("in use") || cluster.logs_mention("already used");
                    let report = cluster.log_report();
                    cluster.clean_shutdown = true; // already reported in the error
                    drop(cluster);
                    let e = e.context(format!("start attempt {attempt}: node logs:\n{report}"));
                    if !port_clash {
                        return Err(e);
                    }
                    eprintln!("[harness] a port was taken; retrying the cluster start: {e:#}");
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow!("cluster did not start")))
    }

    fn create(
        bin: &Path,
        n: usize,
        opts: &ClusterOptions,
        adjust: &impl Fn(&mut NodeConfig),
    ) -> Result<Cluster> {
        let dir = tempfile::Builder::new()
            .prefix("dkv-it-")
            .tempdir()
            .context("create temp dir")?;
        let (ports, reserved) = reserve_ports(4 * n)?;
        let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let certs = dir.path().join("certs");
        let admin_token_path = certs.join("admin-token");
        make_credentials(&certs, n, &admin_token_path)?;
        let members: Vec<(u64, SocketAddr, SocketAddr)> = (0..n)
            .map(|i| (i as u64 + 1, addr(ports[2 * i]), addr(ports[2 * i + 1])))
            .collect();
        let proxies = if opts.proxies {
            let upstream: Vec<SocketAddr> = members.iter().map(|m| m.2).collect();
            Some(ProxyMesh::start(&upstream)?)
        } else {
            None
        };
        // The proxies hold their own ports now; free the nodes' for the nodes.
        drop(reserved);
        let mut nodes = Vec::with_capacity(n);
        for (i, &(id, resp_addr, http_addr)) in members.iter().enumerate() {
            let peers = members
                .iter()
                .enumerate()
                .filter(|(_, m)| m.0 != id)
                .map(|(j, &(pid, presp, phttp))| match &proxies {
                    Some(mesh) => (pid, presp, mesh.listen_addr(i, j)),
                    None => (pid, presp, phttp),
                })
                .collect();
            let mut config = NodeConfig {
                id,
                cluster_id: "test".into(),
                resp_addr,
                http_addr,
                data_dir: dir.path().join(format!("node{id}")),
                peers,
                tick_ms: 10,
                request_timeout_ms: 5000,
                max_bulk_len_bytes: 512 * 1024 * 1024,
                extra_yaml: String::new(),
                raft_extra: String::new(),
                metrics_addr: Some(addr(ports[2 * n + i])),
                peer_tls: (!opts.insecure_peer_rpc).then(|| PeerTlsPaths {
                    ca_cert_path: certs.join(dkv::tls::CA_CERT_FILE),
                    cert_path: certs.join(dkv::tls::node_cert_file(dkv::raft::NodeId(id))),
                    key_path: certs.join(dkv::tls::node_key_file(dkv::raft::NodeId(id))),
                }),
                admin_token_path: Some(admin_token_path.clone()),
                limits_extra: String::new(),
                tls_resp_addr: addr(ports[3 * n + i]),
                client_tls: None,
            };
            adjust(&mut config);
            if config.extra_yaml.contains("insecure_peer_rpc") {
                config.peer_tls = None;
            }
            let config_path = dir.path().join(format!("node{id}.yaml"));
            std::fs::write(&config_path, config.to_yaml())
                .with_context(|| format!("write {}", config_path.display()))?;
            nodes.push(Node {
                log_path: dir.path().join(format!("node{id}.log")),
                config,
                config_path,
                child: None,
                paused: false,
            });
        }
        Ok(Cluster {
            dir: Some(dir),
            bin: bin.to_path_buf(),
            nodes,
            leader: None,
            clean_shutdown: false,
            server_args: opts.server_args.clone(),
            admin_token_path,
            proxies,
        })
    }

    async fn boot(&mut self) -> Result<()> {
        for i in 0..self.nodes.len() {
            self.spawn(i)?;
        }
        for i in 0..self.nodes.len() {
            self.wait_ready(i, READY_TIMEOUT).await?;
        }
        self.wait_for_leader(START_TIMEOUT).await?;
        Ok(())
    }

    fn spawn(&mut self, i: usize) -> Result<()> {
        let node = self.node(i)?;
        anyhow::ensure!(node.child.is_none(), "node {i} is already running");
        append_marker(&node.log_path, "spawn");
        let child = process::spawn_server_with_args(
            &self.bin,
            &node.config_path,
            &node.log_path,
            &self.server_args,
        )
        .with_context(|| format!("spawn node {i}"))?;
        self.nodes[i].child = Some(child);
        self.nodes[i].paused = false;
        Ok(())
    }

    fn node(&self, i: usize) -> Result<&Node> {
        self.nodes
            .get(i)
            .with_context(|| format!("no node {i} (cluster of {})", self.nodes.len()))
    }

    fn node_mut(&mut self, i: usize) -> Result<&mut Node> {
        let n = self.nodes.len();
        self.nodes
            .get_mut(i)
            .with_context(|| format!("no node {i} (cluster of {n})"))
    }

    /// Number of nodes (running or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True if the cluster has no nodes (never, after `start`).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Indexes of the nodes whose process is running.
    pub fn live(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].child.is_some())
            .collect()
    }

    /// The leader seen by the last successful [`Cluster::wait_for_leader`] (which `start`
    /// also runs).
    ///
    /// # Panics
    /// If no leader was ever observed (impossible after a successful `start`).
    pub fn leader(&self) -> usize {
        self.leader
            .expect("Cluster::start waits for a leader, so one has been observed")
    }

    /// Node `i`'s RESP address.
    ///
    /// # Panics
    /// If `i` is out of range.
    pub fn resp_addr(&self, i: usize) -> SocketAddr {
        self.nodes[i].config.resp_addr
    }

    /// Node `i`'s TLS RESP address (meaningful when its config has `client_tls`).
    ///
    /// # Panics
    /// If `i` is out of range.
    pub fn tls_resp_addr(&self, i: usize) -> SocketAddr {
        self.nodes[i].config.tls_resp_addr
    }

    /// Node `i`'s HTTP address: the peer listener (mutual TLS unless the
    /// cluster runs with `insecure_peer_rpc`).
    ///
    /// # Panics
    /// If `i` is out of range.
    pub fn http_addr(&self, i: usize) -> SocketAddr {
        self.nodes[i].config.http_addr
    }

    /// Node `i`'s operator address (`metrics_addr`, plain HTTP): `/status`,
    /// `/metrics`, `/health`, `/admin/*`. A config whose hook removed
    /// `metrics_addr` is asked on `http_addr` (which then must be plain).
    ///
    /// # Panics
    /// If `i` is out of range.
    pub fn operator_addr(&self, i: usize) -> SocketAddr {
        let config = &self.nodes[i].config;
        config.metrics_addr.unwrap_or(config.http_addr)
    }

    /// The admin token file every node is configured with (`dkv-cli
    /// --admin-token-file`).
    pub fn admin_token_path(&self) -> &Path {
        &self.admin_token_path
    }

    /// The directory holding the cluster CA (`ca.pem`, `ca-key.pem`) and the
    /// nodes' certificates.
    pub fn certs_dir(&self) -> PathBuf {
        self.dir().join("certs")
    }

    /// Node `i`'s config.
    ///
    /// # Panics
    /// If `i` is out of range.
    pub fn config(&self, i: usize) -> &NodeConfig {
        &self.nodes[i].config
    }

    /// The pid of node `i`, if running.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes.get(i)?.child.as_ref().map(Child::id)
    }

    /// The temp dir holding configs, data and logs.
    pub fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .expect("the temp dir lives until drop")
            .path()
    }

    /// `GET /status` on node `i`.
    ///
    /// # Errors
    /// The node does not answer (within 2 s), answers non-200, or the JSON is malformed.
    pub async fn status(&self, i: usize) -> Result<Status> {
        self.node(i)?;
        let addr = self.operator_addr(i);
        let resp = crate::http::get(addr, "/status", STATUS_TIMEOUT)
            .await
            .with_context(|| format!("status of node {i}"))?;
        anyhow::ensure!(
            resp.status == 200,
            "GET /status on node {i}: HTTP {} {:?}",
            resp.status,
            resp.text()
        );
        Status::parse(&resp.text()).with_context(|| format!("status of node {i}"))
    }

    /// `GET path` on node `i`'s HTTP port (e.g. `/metrics`, `/health`).
    ///
    /// # Errors
    /// The node does not answer within 2 s.
    pub async fn http_get(&self, i: usize, path: &str) -> Result<crate::http::HttpResponse> {
        self.node(i)?;
        let addr = self.operator_addr(i);
        crate::http::get(addr, path, STATUS_TIMEOUT)
            .await
            .with_context(|| format!("node {i}"))
    }

    /// The admin token every node is configured with (the file's content).
    ///
    /// # Errors
    /// The file cannot be read.
    pub fn admin_token(&self) -> Result<String> {
        let token = std::fs::read_to_string(&self.admin_token_path)
            .with_context(|| format!("read {}", self.admin_token_path.display()))?;
        Ok(token.trim().to_string())
    }

    /// Fail if a node we believe is running has exited.
    fn check_alive(&mut self) -> Result<()> {
        for (i, node) in self.nodes.iter_mut().enumerate() {
            if let Some(child) = &mut node.child {
                if let Some(status) = child.try_wait().context("try_wait")? {
                    node.child = None;
                    bail!(
                        "node {i} (id {}) exited unexpectedly with {status}; log tail:\n{}",
                        node.config.id,
                        process::tail(&node.log_path, LOG_TAIL_LINES)
                    );
                }
            }
        }
        Ok(())
    }

    /// Wait until node `i` answers `/status` with `loading: false`.
    ///
    /// # Errors
    /// The process exits, or no such answer within `timeout`.
    pub async fn wait_ready(&mut self, i: usize, timeout: Duration) -> Result<Status> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            let last = match self.status(i).await {
                Ok(s) if !s.loading => return Ok(s),
                Ok(s) => format!("{s:?}"),
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() >= deadline {
                bail!(
                    "node {i} not ready (answering /status, loading=false) within {timeout:?}; last: {last}"
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Wait until, among running nodes, exactly one reports `Leader` and every running
    /// node names it as leader; returns its index and remembers it for
    /// [`Cluster::leader`].
    ///
    /// # Errors
    /// A node exits, or no agreement within `timeout` (the error shows the last
    /// statuses).
    pub async fn wait_for_leader(&mut self, timeout: Duration) -> Result<usize> {
        let deadline = Instant::now() + timeout;
        let mut last: Vec<String>;
        loop {
            self.check_alive()?;
            last = Vec::new();
            let mut statuses = Vec::new();
            let responsive = self.responsive();
            for &i in &responsive {
                match self.status(i).await {
                    Ok(s) => {
                        last.push(format!("node {i}: {s:?}"));
                        statuses.push((i, s));
                    }
                    Err(e) => last.push(format!("node {i}: {e:#}")),
                }
            }
            if statuses.len() == responsive.len() {
                if let Some(leader) = agreed_leader(&statuses) {
                    self.leader = Some(leader);
                    return Ok(leader);
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "no leader agreed on by all running, unpaused nodes {:?} within {timeout:?}; last statuses:\n{}",
                    self.responsive(),
                    last.join("\n")
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Wait until node `i` has applied at least `index`.
    ///
    /// # Errors
    /// The node exits, or it does not get there within `timeout`.
    pub async fn wait_applied(
        &mut self,
        i: usize,
        index: u64,
        timeout: Duration,
    ) -> Result<Status> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            let last = self.status(i).await;
            if let Ok(s) = &last {
                if s.last_applied >= index {
                    return Ok(s.clone());
                }
            }
            if Instant::now() >= deadline {
                bail!("node {i} did not apply index {index} within {timeout:?}; last: {last:?}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// SIGKILL node `i` and reap it.
    ///
    /// # Errors
    /// The node is not running.
    pub fn kill9(&mut self, i: usize) -> Result<()> {
        let node = self.node_mut(i)?;
        let mut child = node
            .child
            .take()
            .with_context(|| format!("kill9: node {i} is not running"))?;
        node.paused = false;
        child.kill().with_context(|| format!("SIGKILL node {i}"))?;
        child.wait().with_context(|| format!("reap node {i}"))?;
        append_marker(&node.log_path, "killed with SIGKILL");
        if self.leader == Some(i) {
            self.leader = None;
        }
        Ok(())
    }

    /// Waits up to `timeout` for node `i` to exit by itself (a client's
    /// `SHUTDOWN`, say) and returns how it exited.
    ///
    /// # Errors
    /// The node is not running, or it is still running after `timeout`.
    pub async fn wait_exited(
        &mut self,
        i: usize,
        timeout: Duration,
    ) -> Result<std::process::ExitStatus> {
        let node = self.node_mut(i)?;
        let mut child = node
            .child
            .take()
            .with_context(|| format!("wait_exited: node {i} is not running"))?;
        match process::wait_exit(&mut child, timeout).await? {
            Some(status) => {
                append_marker(&node.log_path, &format!("exited by itself: {status}"));
                if self.leader == Some(i) {
                    self.leader = None;
                }
                Ok(status)
            }
            None => {
                node.child = Some(child);
                bail!("node {i} still runs after {timeout:?}")
            }
        }
    }

    /// SIGTERM node `i` and wait for it to exit.
    ///
    /// # Errors
    /// The node is not running, or it did not exit within [`STOP_TIMEOUT`] (it is then
    /// SIGKILLed, and the error says so).
    pub async fn stop(&mut self, i: usize) -> Result<()> {
        let node = self.node_mut(i)?;
        let mut child = node
            .child
            .take()
            .with_context(|| format!("stop: node {i} is not running"))?;
        if std::mem::take(&mut node.paused) {
            // A stopped process would not act on SIGTERM.
            process::signal(&child, libc::SIGCONT).with_context(|| format!("resume node {i}"))?;
        }
        process::sigterm(&child).with_context(|| format!("stop node {i}"))?;
        let exited = process::wait_exit(&mut child, STOP_TIMEOUT).await?;
        if self.leader == Some(i) {
            self.leader = None;
        }
        let node = &self.nodes[i];
        match exited {
            Some(status) => {
                append_marker(&node.log_path, &format!("stopped with SIGTERM: {status}"));
                Ok(())
            }
            None => {
                let _ = child.kill();
                let _ = child.wait();
                append_marker(&node.log_path, "SIGTERM ignored; killed");
                bail!(
                    "node {i} did not exit within {STOP_TIMEOUT:?} after SIGTERM (killed it); log tail:\n{}",
                    process::tail(&node.log_path, LOG_TAIL_LINES)
                )
            }
        }
    }

    /// Adds a node that is not started yet: the next id, free ports, its own
    /// certificate from the cluster CA, a config naming the current nodes as
    /// peers (like the others' configs, and `adjust`ed the same way), an empty
    /// data dir. Returns its index. Start it with [`Cluster::spawn_with`]
    /// (e.g. `--join`).
    ///
    /// # Errors
    /// No free ports, or the certificate cannot be made.
    pub fn add_node(&mut self) -> Result<usize> {
        anyhow::ensure!(
            self.proxies.is_none(),
            "add_node: a proxied cluster cannot grow"
        );
        let i = self.nodes.len();
        let id = i as u64 + 1;
        let (ports, reserved) = reserve_ports(4)?;
        drop(reserved);
        let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let certs = self.certs_dir();
        let ca = dkv::tls::read_ca(&certs).context("read the test cluster CA")?;
        let cert = dkv::tls::generate_node_cert(
            &ca,
            dkv::raft::NodeId(id),
            &["127.0.0.1".to_string()],
            30,
        )
        .with_context(|| format!("make node {id}'s certificate"))?;
        dkv::tls::write_node(&certs, dkv::raft::NodeId(id), &cert, false)
            .with_context(|| format!("write node {id}'s certificate"))?;
        let template = &self.nodes[0].config;
        let mut config = template.clone();
        config.id = id;
        config.resp_addr = addr(ports[0]);
        config.http_addr = addr(ports[1]);
        config.metrics_addr = Some(addr(ports[2]));
        config.tls_resp_addr = addr(ports[3]);
        config.data_dir = self.dir().join(format!("node{id}"));
        config.peers = self
            .nodes
            .iter()
            .map(|n| (n.config.id, n.config.resp_addr, n.config.http_addr))
            .collect();
        if let Some(tls) = &mut config.peer_tls {
            tls.cert_path = certs.join(dkv::tls::node_cert_file(dkv::raft::NodeId(id)));
            tls.key_path = certs.join(dkv::tls::node_key_file(dkv::raft::NodeId(id)));
        }
        let config_path = self.dir().join(format!("node{id}.yaml"));
        std::fs::write(&config_path, config.to_yaml())
            .with_context(|| format!("write {}", config_path.display()))?;
        self.nodes.push(Node {
            log_path: self.dir().join(format!("node{id}.log")),
            config,
            config_path,
            child: None,
            paused: false,
        });
        Ok(i)
    }

    /// Starts node `i` with extra `dkv-server` arguments for this spawn only
    /// (e.g. `--join HOST:PORT`) and waits until it is ready.
    ///
    /// # Errors
    /// The node is running, exits, or is not ready within [`READY_TIMEOUT`].
    pub async fn spawn_with(&mut self, i: usize, args: &[String]) -> Result<Status> {
        let saved = self.server_args.clone();
        self.server_args.extend(args.iter().cloned());
        let spawned = self.spawn(i);
        self.server_args = saved;
        spawned?;
        self.wait_ready(i, READY_TIMEOUT)
            .await
            .with_context(|| format!("start node {i} with {args:?}"))
    }

    /// Starts node `i` (stopped) and returns once its process exits, with its
    /// exit status and log tail: for starts that must be refused.
    ///
    /// # Errors
    /// It is running, or it did not exit within `timeout` (it is then killed).
    pub async fn start_expecting_exit(
        &mut self,
        i: usize,
        timeout: Duration,
    ) -> Result<(std::process::ExitStatus, String)> {
        self.spawn(i)?;
        let node = self.node_mut(i)?;
        let mut child = node.child.take().context("just spawned")?;
        let exited = process::wait_exit(&mut child, timeout).await?;
        let tail = process::tail(&self.nodes[i].log_path, LOG_TAIL_LINES);
        match exited {
            Some(status) => Ok((status, tail)),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("node {i} kept running for {timeout:?}; log tail:\n{tail}")
            }
        }
    }

    /// Deletes node `i`'s data directory (the node must not be running): a
    /// dead disk.
    ///
    /// # Errors
    /// The node runs, or the directory cannot be removed.
    pub fn wipe_data(&mut self, i: usize) -> Result<()> {
        let node = self.node(i)?;
        anyhow::ensure!(node.child.is_none(), "wipe_data: node {i} is running");
        let dir = node.config.data_dir.clone();
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("remove {}", dir.display())),
        }
    }

    /// Start a stopped or killed node again with the same config and data dir, and wait
    /// until it answers `/status` with `loading: false`.
    ///
    /// # Errors
    /// The node is running, exits, or is not ready within [`READY_TIMEOUT`].
    pub async fn restart(&mut self, i: usize) -> Result<Status> {
        self.spawn(i)?;
        self.wait_ready(i, READY_TIMEOUT)
            .await
            .with_context(|| format!("restart node {i}"))
    }

    /// A `redis` connection to node `i` (response timeout
    /// [`crate::client::RESPONSE_TIMEOUT`]).
    ///
    /// # Errors
    /// The node does not accept the connection.
    pub async fn client(&self, i: usize) -> Result<MultiplexedConnection> {
        crate::client::connect(self.node(i)?.config.resp_addr)
            .await
            .with_context(|| format!("client for node {i}"))
    }

    /// Indexes of the nodes whose process is running and not paused.
    pub fn responsive(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].child.is_some() && !self.nodes[i].paused)
            .collect()
    }

    /// True if node `i` is SIGSTOPped by [`Cluster::pause`].
    pub fn is_paused(&self, i: usize) -> bool {
        self.nodes.get(i).is_some_and(|n| n.paused)
    }

    /// SIGSTOP node `i` (it keeps its sockets, answers nothing, and its peers see
    /// only timeouts) until [`Cluster::resume`]. A paused node is skipped by
    /// [`Cluster::wait_for_leader`]; `kill9`, `stop` and drop handle it.
    ///
    /// # Errors
    /// The node is not running or already paused.
    pub fn pause(&mut self, i: usize) -> Result<()> {
        let node = self.node_mut(i)?;
        anyhow::ensure!(!node.paused, "pause: node {i} is already paused");
        let child = node
            .child
            .as_ref()
            .with_context(|| format!("pause: node {i} is not running"))?;
        process::signal(child, libc::SIGSTOP).with_context(|| format!("SIGSTOP node {i}"))?;
        node.paused = true;
        append_marker(&node.log_path, "paused with SIGSTOP");
        if self.leader == Some(i) {
            self.leader = None;
        }
        Ok(())
    }

    /// SIGCONT a node paused by [`Cluster::pause`].
    ///
    /// # Errors
    /// The node is not running or not paused.
    pub fn resume(&mut self, i: usize) -> Result<()> {
        let node = self.node_mut(i)?;
        anyhow::ensure!(node.paused, "resume: node {i} is not paused");
        let child = node
            .child
            .as_ref()
            .with_context(|| format!("resume: node {i} is not running"))?;
        process::signal(child, libc::SIGCONT).with_context(|| format!("SIGCONT node {i}"))?;
        node.paused = false;
        append_marker(&node.log_path, "resumed with SIGCONT");
        Ok(())
    }

    /// The peer-link proxies, if the cluster was started with them.
    pub fn proxies(&self) -> Option<&ProxyMesh> {
        self.proxies.as_ref()
    }

    fn mesh(&self) -> Result<&ProxyMesh> {
        self.proxies
            .as_ref()
            .context("this cluster has no link proxies: start it with Cluster::start_with_proxies")
    }

    /// Set the directed link `from -> to` (what `from` sends to `to`, and the
    /// answers on those connections).
    ///
    /// # Errors
    /// The cluster has no proxies.
    pub fn set_link(&self, from: usize, to: usize, mode: LinkMode) -> Result<()> {
        self.mesh()?.set(from, to, mode);
        Ok(())
    }

    /// Nodes in the same group reach each other; every other link is blackholed. A
    /// node in no group is cut from all.
    ///
    /// # Errors
    /// The cluster has no proxies.
    pub fn partition(&self, groups: &[&[usize]]) -> Result<()> {
        self.partition_with(groups, LinkMode::Blackhole)
    }

    /// [`Cluster::partition`] with the given mode for the cut links (`Drop` for fast
    /// failures, `Blackhole` for timeouts).
    ///
    /// # Errors
    /// The cluster has no proxies.
    pub fn partition_with(&self, groups: &[&[usize]], cut: LinkMode) -> Result<()> {
        self.mesh()?.partition(groups, cut);
        Ok(())
    }

    /// Cut node `i` from every other node (both directions).
    ///
    /// # Errors
    /// The cluster has no proxies.
    pub fn isolate(&self, i: usize) -> Result<()> {
        let others: Vec<usize> = (0..self.len()).filter(|&j| j != i).collect();
        self.partition(&[&[i], &others])
    }

    /// Node `bridge` reaches every node; groups `a` and `b` do not reach each other.
    ///
    /// # Errors
    /// The cluster has no proxies.
    pub fn bridge(&self, bridge: usize, a: &[usize], b: &[usize]) -> Result<()> {
        let mesh = self.mesh()?;
        let mut with_a = a.to_vec();
        with_a.push(bridge);
        let mut with_b = b.to_vec();
        with_b.push(bridge);
        for from in 0..self.len() {
            for to in 0..self.len() {
                if from == to {
                    continue;
                }
                let ok = (with_a.contains(&from) && with_a.contains(&to))
                    || (with_b.contains(&from) && with_b.contains(&to));
                mesh.set(
                    from,
                    to,
                    if ok {
                        LinkMode::Pass
                    } else {
                        LinkMode::Blackhole
                    },
                );
            }
        }
        Ok(())
    }

    /// Every link passes again.
    ///
    /// # Errors
    /// The cluster has no proxies.
    pub fn heal(&self) -> Result<()> {
        self.mesh()?.set_all(LinkMode::Pass);
        Ok(())
    }

    /// Best effort, no waiting: the responsive node that reports `Leader` with the
    /// highest term, asking each with a short timeout. None if no node claims it.
    pub async fn find_leader(&self) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        for i in self.responsive() {
            let addr = self.operator_addr(i);
            let Ok(resp) = crate::http::get(addr, "/status", Duration::from_millis(500)).await
            else {
                continue;
            };
            let Ok(s) = Status::parse(&resp.text()) else {
                continue;
            };
            if s.is_leader() && best.is_none_or(|(t, _)| s.term > t) {
                best = Some((s.term, i));
            }
        }
        best.map(|(_, i)| i)
    }

    /// The last `lines` lines of node `i`'s log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        match self.nodes.get(i) {
            Some(n) => process::tail(&n.log_path, lines),
            None => format!("<no node {i}>"),
        }
    }

    /// The tail of every node's log, for failure messages.
    pub fn log_report(&self) -> String {
        let mut out = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let _ = writeln!(
                out,
                "----- node {i} (id {}) {} -----\n{}",
                n.config.id,
                n.log_path.display(),
                process::tail(&n.log_path, LOG_TAIL_LINES)
            );
        }
        out
    }

    fn logs_mention(&self, needle: &str) -> bool {
        self.nodes.iter().any(|n| {
            std::fs::read_to_string(&n.log_path)
                .map(|t| t.to_lowercase().contains(needle))
                .unwrap_or(false)
        })
    }

    /// Stop every node (SIGKILL) and drop the temp dir without printing logs: the end of
    /// a passing test.
    pub fn shutdown(mut self) {
        self.clean_shutdown = true;
    }
}

/// `POST /admin/members?{query}` (e.g. `op=remove&id=2`) on the operator
/// port `addr` with the admin `token`: one membership change, answered once
/// it commits or is refused. Returns the HTTP status and body. Free of the
/// [`Cluster`], so a caller can send it while it kills the node it asked.
///
/// # Errors
/// No answer within `timeout` (the change's outcome is then unknown).
pub async fn post_members(
    addr: SocketAddr,
    token: &str,
    query: &str,
    timeout: Duration,
) -> Result<(u16, String)> {
    let auth = format!("Bearer {token}");
    let resp = crate::http::post(
        addr,
        &format!("/admin/members?{query}"),
        &[("Authorization", &auth)],
        b"",
        timeout,
    )
    .await?;
    Ok((resp.status, resp.text()))
}

/// The node every status names as leader, if exactly one claims the role.
fn agreed_leader(statuses: &[(usize, Status)]) -> Option<usize> {
    let mut leaders = statuses.iter().filter(|(_, s)| s.is_leader());
    let (leader, leader_status) = leaders.next()?;
    if leaders.next().is_some() {
        return None;
    }
    statuses
        .iter()
        .all(|(_, s)| s.leader == Some(leader_status.id) && s.term == leader_status.term)
        .then_some(*leader)
}

fn append_marker(log: &Path, what: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        let _ = writeln!(f, "===== [harness] {what} =====");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let keep = std::env::var_os("DKV_KEEP_LOGS").is_some();
        if !self.clean_shutdown || std::thread::panicking() {
            eprintln!(
                "[harness] test did not end with Cluster::shutdown; node logs:\n{}",
                self.log_report()
            );
        }
        if keep {
            if let Some(dir) = self.dir.take() {
                eprintln!("[harness] kept {}", dir.keep().display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Role;

    fn status(id: u64, role: Role, term: u64, leader: Option<u64>) -> Status {
        Status {
            id,
            role,
            term,
            leader,
            leader_resp_addr: None,
            commit_index: 0,
            last_applied: 0,
            last_log_index: 0,
            loading: false,
            leader_changes: 0,
            voters: Vec::new(),
            learners: Vec::new(),
        }
    }

    #[test]
    fn agreed_leader_needs_one_leader_named_by_all() {
        let l = |i| status(i, Role::Leader, 2, Some(i));
        let f = |i, leader| status(i, Role::Follower, 2, leader);
        assert_eq!(
            agreed_leader(&[(0, f(1, Some(2))), (1, l(2)), (2, f(3, Some(2)))]),
            Some(1)
        );
        assert_eq!(agreed_leader(&[(0, f(1, None)), (1, l(2))]), None);
        assert_eq!(agreed_leader(&[(0, l(1)), (1, l(2))]), None);
        assert_eq!(
            agreed_leader(&[(0, f(1, Some(2))), (1, f(2, Some(2)))]),
            None
        );
        assert_eq!(agreed_leader(&[(0, l(1))]), Some(0));
        // A follower still in an older term does not count as agreeing.
        assert_eq!(
            agreed_leader(&[(0, status(1, Role::Follower, 1, Some(2))), (1, l(2))]),
            None
        );
    }

    #[test]
    fn config_yaml_has_the_documented_keys() {
        let a = |p| SocketAddr::from(([127, 0, 0, 1], p));
        let c = NodeConfig {
            id: 1,
            cluster_id: "test".into(),
            resp_addr: a(7001),
            http_addr: a(8001),
            data_dir: "/tmp/x/node1".into(),
            peers: vec![(2, a(7002), a(8002))],
            tick_ms: 10,
            request_timeout_ms: 5000,
            max_bulk_len_bytes: 536870912,
            extra_yaml: String::new(),
            raft_extra: String::new(),
            metrics_addr: Some(a(9001)),
            peer_tls: None,
            admin_token_path: None,
            limits_extra: String::new(),
            tls_resp_addr: a(6380),
            client_tls: None,
        };
        let y = c.to_yaml();
        assert!(!y.contains("tls_resp_addr"), "{y}");
        assert!(y.contains("metrics_addr: 127.0.0.1:9001\n"), "{y}");
        assert!(y.contains("insecure_peer_rpc: true\n"), "{y}");
        assert!(y.contains("id: 1\n"), "{y}");
        assert!(y.contains("data_dir: \"/tmp/x/node1\"\n"), "{y}");
        assert!(
            y.contains("  - { id: 2, resp_addr: 127.0.0.1:7002, http_addr: 127.0.0.1:8002 }\n"),
            "{y}"
        );
        assert!(y.contains("request_timeout_ms: 5000"), "{y}");
    }

    #[test]
    fn free_ports_are_distinct() {
        let (ports, reserved) = reserve_ports(6).unwrap();
        // While reserved, no other port-0 listener gets one of them.
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(!ports.contains(&other.local_addr().unwrap().port()));
        drop(reserved);
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 6);
    }
}
