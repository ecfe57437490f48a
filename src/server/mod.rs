//! Listeners: RESP for clients (this file: accept loop, connection cap, graceful
//! shutdown) and HTTP for peers and operators ([`http`]).
//!
//! One task per client connection, in a `conn{id, peer}` span. The RESP path is
//! split by responsibility: [`codec`] frames requests (by hand, with limits, and
//! without recursion), [`command`] holds the command table and turns a request
//! into a reply through a [`command::Backend`], [`reply`] encodes replies in
//! RESP2 or RESP3, [`connection`] runs the read → execute → write loop with
//! pipelining, and [`info`] renders `INFO`.
//!
//! This module never touches the key space directly: reads and writes go
//! through [`NodeHandle`]. Limits come from [`LimitsConfig`]; nothing here grows
//! without bound (connections, request size, argument count).

pub mod blocking;
pub mod client_limits;
pub mod codec;
pub mod command;
pub mod commands;
pub mod connection;
pub mod exposition;
pub mod http;
pub mod info;
pub mod monitor;
pub mod pubsub;
pub mod reply;
pub mod stats;
pub mod tracking;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use crate::config::{AuthConfig, LimitsConfig};
use crate::kv::{Op, Output};
use crate::metrics::Metrics;
use crate::node::{NodeHandle, NodeStatus, ReadCtx, RequestError};

pub use command::CommandError;
pub use info::ServerFacts;

/// Redis's reply to a connection over `maxclients`, sent before closing it.
/// At most one line per this interval about connections refused at the cap.
const REFUSED_CLIENTS_LOG_INTERVAL: Duration = Duration::from_secs(10);

const MAX_CLIENTS_REPLY: &[u8] = b"-ERR max number of clients reached\r\n";

/// Everything the RESP listener needs; cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct ServerContext {
    inner: Arc<Inner>,
}

struct Inner {
    node: NodeHandle,
    limits: LimitsConfig,
    metrics: Metrics,
    facts: ServerFacts,
    counters: command::CommandCounters,
    connected_clients: AtomicUsize,
    next_client_id: AtomicU64,
    clients: Arc<commands::clients::ClientRegistry>,
    auth: AuthConfig,
    acl_log: commands::acl::AclLog,
    client_limits: Arc<client_limits::ClientLimits>,
    /// Connections refused at the client cap, logged rate-limited (anyone
    /// who can reach the port can cause them).
    refused_clients: http::RefusedLog,
    /// A `FAILOVER` started here is running.
    failover: Arc<AtomicBool>,
    /// Set once by `SHUTDOWN`; the process's main task waits on it
    /// ([`ServerContext::shutdown_requested`]).
    shutdown: watch::Sender<Option<commands::persistence::Shutdown>>,
}

impl ServerContext {
    /// A context for `node`; registers the per-command counters.
    pub fn new(
        node: NodeHandle,
        limits: LimitsConfig,
        metrics: Metrics,
        facts: ServerFacts,
    ) -> ServerContext {
        let clients: Arc<commands::clients::ClientRegistry> = Arc::default();
        let client_limits = Arc::new(client_limits::ClientLimits::new(
            client_limits::ClientSettings::from(&limits),
            Some(metrics.clients_closed.clone()),
            Some(clients.clone()),
        ));
        ServerContext {
            inner: Arc::new(Inner {
                node,
                limits,
                metrics,
                facts,
                counters: command::CommandCounters::register(),
                connected_clients: AtomicUsize::new(0),
                next_client_id: AtomicU64::new(1),
                clients,
                auth: AuthConfig::default(),
                acl_log: commands::acl::AclLog::default(),
                client_limits,
                refused_clients: http::RefusedLog::new(
                    "client connections",
                    REFUSED_CLIENTS_LOG_INTERVAL,
                ),
                failover: Arc::default(),
                shutdown: watch::Sender::new(None),
            }),
        }
    }

    /// The context with client authentication settings.
    ///
    /// # Panics
    /// If called after the context was cloned (it is a setup step).
    pub fn with_auth(mut self, auth: AuthConfig) -> ServerContext {
        let inner = Arc::get_mut(&mut self.inner).expect("with_auth is called before sharing");
        inner.acl_log = commands::acl::AclLog::new(auth.acl_log_max_entries);
        inner.auth = auth;
        self
    }

    /// The client limits in force (CONFIG SET changes them).
    pub fn client_limits(&self) -> &Arc<client_limits::ClientLimits> {
        &self.inner.client_limits
    }

    /// Resolves once a client asked for `SHUTDOWN`, with how (the process's
    /// main task stops as it does on SIGTERM). Never resolves otherwise.
    pub async fn shutdown_requested(&self) -> commands::persistence::Shutdown {
        let mut asked = self.inner.shutdown.subscribe();
        let seen = asked
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|how| *how);
        match seen {
            Some(how) => how,
            // The sender lives in `self`: it cannot close while we wait.
            None => std::future::pending().await,
        }
    }

    /// The registry of this node's client connections (CLIENT LIST, and
    /// the operator route `/admin/clients`).
    pub fn clients(&self) -> Arc<commands::clients::ClientRegistry> {
        self.inner.clients.clone()
    }

    /// The node handle.
    pub fn node(&self) -> &NodeHandle {
        &self.inner.node
    }

    /// The limits in force.
    pub fn limits(&self) -> &LimitsConfig {
        &self.inner.limits
    }

    /// The per-command counters.
    pub fn counters(&self) -> &command::CommandCounters {
        &self.inner.counters
    }

    /// A new client id (unique in this process, starting at 1).
    pub fn next_client_id(&self) -> u64 {
        self.inner.next_client_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Counts a new connection unless the cap is reached.
    fn try_admit(&self) -> Option<ClientSlot> {
        let previous = self.inner.connected_clients.fetch_add(1, Ordering::AcqRel);
        let traffic = &self.inner.counters.stats().traffic;
        if previous >= self.inner.limits.max_clients {
            self.inner.connected_clients.fetch_sub(1, Ordering::AcqRel);
            traffic.rejected_connections.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        traffic.connections_received.fetch_add(1, Ordering::Relaxed);
        self.inner.metrics.connected_clients.increment(1.0);
        Some(ClientSlot { ctx: self.clone() })
    }
}

/// One admitted connection; frees its place in the cap when dropped.
struct ClientSlot {
    ctx: ServerContext,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.ctx
            .inner
            .connected_clients
            .fetch_sub(1, Ordering::AcqRel);
        self.ctx.inner.metrics.connected_clients.decrement(1.0);
    }
}

impl command::Env for ServerContext {
    fn facts(&self) -> &ServerFacts {
        &self.inner.facts
    }

    fn status(&self) -> NodeStatus {
        self.inner.node.status()
    }

    fn kv_info(&self) -> crate::kv::KvInfo {
        self.inner.node.read_local(|db| db.info(wall_clock_ms()))
    }

    fn connected_clients(&self) -> usize {
        self.inner.connected_clients.load(Ordering::Relaxed)
    }

    fn clients(&self) -> Option<&commands::clients::ClientRegistry> {
        Some(&self.inner.clients)
    }

    fn users(&self) -> Arc<crate::acl::Users> {
        self.inner.node.read_local(|db| db.users())
    }

    fn acl_log(&self) -> Option<&commands::acl::AclLog> {
        Some(&self.inner.acl_log)
    }

    fn acl_file(&self) -> Option<&std::path::Path> {
        self.inner.auth.aclfile.as_deref()
    }

    fn client_limits(&self) -> Option<&client_limits::ClientLimits> {
        Some(&self.inner.client_limits)
    }

    fn key_waits(&self) -> Option<&Arc<crate::node::wakeups::KeyWaits>> {
        Some(self.inner.node.key_waits())
    }

    fn script_cached(&self, sha: &str) -> bool {
        self.inner.node.read_local(|db| db.script(sha).is_some())
    }

    fn function_reads(&self, name: &[u8]) -> bool {
        self.inner
            .node
            .read_local(|db| crate::kv::functions::fcall_reads(db, name))
    }

    fn pubsub(&self) -> Option<&Arc<crate::node::pubsub::PubSubHub>> {
        Some(self.inner.node.pubsub())
    }

    fn tracking(&self) -> Option<&Arc<crate::node::tracking::TrackingHub>> {
        Some(self.inner.node.tracking())
    }

    fn scripts(&self) -> Option<&crate::node::scripts::ScriptMonitor> {
        Some(self.inner.node.scripts())
    }

    fn stats(&self) -> Option<&Arc<stats::Stats>> {
        Some(self.inner.counters.stats())
    }

    fn membership(&self) -> Option<crate::node::Membership> {
        Some(self.inner.node.membership())
    }

    fn start_failover(&self, to: Option<crate::raft::NodeId>, wait: Duration) -> bool {
        let running = self.inner.failover.clone();
        if running.swap(true, Ordering::AcqRel) {
            return false;
        }
        let node = self.inner.node.clone();
        tokio::spawn(async move {
            match node.transfer_leader(to, wait).await {
                Ok(leader) => tracing::info!(%leader, "FAILOVER: leadership handed over"),
                Err(e) => tracing::warn!(error = %e, "FAILOVER: leadership stayed"),
            }
            running.store(false, Ordering::Release);
        });
        true
    }

    fn failover_running(&self) -> bool {
        self.inner.failover.load(Ordering::Acquire)
    }

    fn snapshot_now(&self, schedule: bool) -> Option<commands::persistence::SnapshotJob> {
        let node = self.inner.node.clone();
        Some(Box::pin(async move { node.snapshot_now(schedule).await }))
    }

    fn request_shutdown(&self, how: commands::persistence::Shutdown) -> bool {
        // Only the first asker stops the process; later ones are refused.
        self.inner.shutdown.send_if_modified(|asked| {
            if asked.is_some() {
                return false;
            }
            *asked = Some(how);
            true
        })
    }

    fn reset_stats(&self) {
        self.inner.counters.stats().reset();
        self.inner.node.read_local(|db| db.reset_read_stats());
        self.inner.client_limits.stats.reset();
    }
}

/// Redis's protected-mode text, sent before closing a refused connection.
const PROTECTED_MODE_REPLY: &[u8] = b"-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// Redis's protected-mode decision: refuse `peer` when protected mode is on,
/// the default user needs no password, and the peer is not local — which
/// for Redis 7.0 means exactly 127.0.0.1 or ::1 (not the rest of 127/8).
pub fn protected_mode_refuses(
    protected_mode: bool,
    users: &crate::acl::Users,
    peer: std::net::IpAddr,
) -> bool {
    let default_nopass = users.get(b"default").is_some_and(|u| u.nopass);
    let local = match peer.to_canonical() {
        std::net::IpAddr::V4(v4) => v4 == std::net::Ipv4Addr::LOCALHOST,
        std::net::IpAddr::V6(v6) => v6 == std::net::Ipv6Addr::LOCALHOST,
    };
    protected_mode && default_nopass && !local
}

/// Proposes the configured `requirepass` as the default user's password
/// once the cluster can take writes, unless the replicated default user
/// already has exactly that password. Retries (bounded) while there is no
/// leader.
pub async fn apply_requirepass(ctx: ServerContext) {
    let Some(password) = ctx.inner.auth.requirepass.clone() else {
        return;
    };
    let rules = crate::acl::user::requirepass_rules(password.as_bytes());
    for _ in 0..600 {
        let users = command::Env::users(&ctx);
        let done = users.get(b"default").is_some_and(|u| {
            if password.is_empty() {
                u.nopass && u.passwords.is_empty()
            } else {
                !u.nopass && u.passwords == [crate::acl::hash_password(password.as_bytes())]
            }
        });
        if done {
            return;
        }
        let op = Op::Acl(crate::acl::AclOp::SetUser {
            name: bytes::Bytes::from_static(b"default"),
            rules: rules.clone(),
        });
        match ctx.inner.node.write(op).await {
            Ok(_) => {
                tracing::info!("requirepass applied to the default user");
                return;
            }
            Err(error) => tracing::debug!(%error, "requirepass not applied yet"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tracing::warn!("requirepass could not be applied: no leader took the write");
}

impl command::Backend for ServerContext {
    fn write(&self, op: Op) -> impl Future<Output = Result<Output, RequestError>> + Send {
        self.inner.node.write(op)
    }

    fn write_batch(
        &self,
        ops: Arc<Vec<Op>>,
    ) -> impl Future<Output = Vec<Result<Output, RequestError>>> + Send {
        self.inner.node.write_batch(ops)
    }

    async fn read<R: Send + 'static>(&self, f: command::ReadWith<R>) -> Result<R, RequestError> {
        let (value, misses) = self.inner.node.read(with_misses(f)).await?;
        if !misses.is_empty() {
            // Answered once its `keymiss` events are in the log (see
            // `send_misses`); the read's own result stands either way.
            let _ = self.write(send_misses(misses)).await;
        }
        Ok(value)
    }

    fn read_local<R>(
        &self,
        f: impl FnOnce(&crate::kv::Db, ReadCtx) -> R,
    ) -> Result<R, RequestError> {
        if self.inner.node.status().loading {
            return Err(RequestError::Loading);
        }
        // A stale read: this replica's map, "now" from the local clock (never
        // before the replicated now, so an expired key stays expired).
        let read = with_misses(|db: &crate::kv::Db, ()| {
            let now_ms = wall_clock_ms().max(db.now_ms());
            f(db, ReadCtx { now_ms })
        });
        let (value, misses) = self.inner.node.read_local(|db| read(db, ()));
        if let (false, Ok(runtime)) = (misses.is_empty(), tokio::runtime::Handle::try_current()) {
            // A stale read is not waited for: its events follow it.
            let node = self.inner.node.clone();
            runtime.spawn(async move { node.write(send_misses(misses)).await });
        }
        Ok(value)
    }
}

/// Runs the read `f` and returns what it read with the keys it missed while
/// `notify-keyspace-events` has `m` (always none otherwise).
fn with_misses<A, R>(
    f: impl FnOnce(&crate::kv::Db, A) -> R,
) -> impl FnOnce(&crate::kv::Db, A) -> (R, Vec<(u8, bytes::Bytes)>) {
    move |db, arg| {
        // A read runs on this thread under the map's lock: what is recorded
        // from here to its end is its own.
        crate::kv::notify::take_misses();
        let value = f(db, arg);
        (value, crate::kv::notify::take_misses())
    }
}

/// The entry that sends `keymiss` for the keys a read served here missed.
///
/// Reads do not go through the log, but events do (so every subscriber,
/// on every node, gets each once and in one order): with `m` on, a read
/// that misses proposes one entry for its misses and is answered after it
/// is applied, so its events come before anything its client does next.
/// That is a write per missing read, the cost Redis's docs warn of for `m`.
fn send_misses(misses: Vec<(u8, bytes::Bytes)>) -> Op {
    Op::PubSub(crate::kv::pubsub::PubSubOp::KeyMiss { misses })
}

/// Milliseconds since the Unix epoch (INFO's TTL averages, READONLY reads).
fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What the TLS RESP listener (`tls_resp_addr`) adds to a plain one.
#[derive(Clone)]
pub struct TlsListener {
    /// Performs the server side of each handshake (`client_tls`).
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// How long a client may take to finish its handshake.
    pub handshake_timeout: Duration,
    /// Failed handshakes are logged through this, rate-limited (an outsider
    /// can fail as many as they like).
    pub refused: Arc<http::RefusedLog>,
}

impl TlsListener {
    /// Builds the listener's TLS side from `client_tls`, logging refusals at
    /// most once per `refused_log_interval`.
    ///
    /// # Errors
    /// When a file cannot be loaded or rustls refuses it; the error names the file.
    pub fn load(
        config: &crate::config::ClientTlsConfig,
        refused_log_interval: Duration,
    ) -> Result<TlsListener, crate::tls::TlsError> {
        let server =
            crate::tls::server_config(&config.cert_path, &config.key_path, &config.client_auth())?;
        Ok(TlsListener {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            handshake_timeout: Duration::from_millis(config.handshake_timeout_ms),
            refused: Arc::new(http::RefusedLog::new(
                "tls client handshakes",
                refused_log_interval,
            )),
        })
    }
}

/// Serves RESP clients on `listener` until `shutdown` completes.
///
/// Connections over `max_clients` get `-ERR max number of clients reached` and
/// are closed. On shutdown the listener stops accepting; open connections finish
/// the batch they are executing, flush it and close; `serve` returns when they
/// are all gone, or after `request_timeout_ms` + 1 s at most.
pub async fn serve(listener: TcpListener, ctx: ServerContext, shutdown: impl Future<Output = ()>) {
    serve_with(listener, ctx, None, shutdown).await;
}

/// [`serve`] for the TLS RESP listener: each connection first finishes a TLS
/// handshake (within `tls.handshake_timeout`), then is served exactly like a
/// plain one (same client cap, protected mode, ACLs, limits, CLIENT LIST).
/// A connection whose handshake fails is closed and affects no other client.
pub async fn serve_tls(
    listener: TcpListener,
    ctx: ServerContext,
    tls: TlsListener,
    shutdown: impl Future<Output = ()>,
) {
    serve_with(listener, ctx, Some(tls), shutdown).await;
}

/// How an accepted connection is to be answered, decided at accept time.
enum Admission {
    /// Over `max_clients`: Redis's reply, then close.
    Full,
    /// Protected mode refuses the peer: Redis's reply, then close.
    Protected(ClientSlot),
    /// Served.
    Admitted(Box<Admitted>),
}

/// An admitted client's state, built before its task starts.
struct Admitted {
    slot: ClientSlot,
    session: command::Session,
    registration: commands::clients::Registration,
    kill_rx: watch::Receiver<bool>,
    id: u64,
}

async fn serve_with(
    listener: TcpListener,
    ctx: ServerContext,
    tls: Option<TlsListener>,
    shutdown: impl Future<Output = ()>,
) {
    // Each connection task holds a sender; `recv` returns None once all are gone.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Latency matters more than packet count for request/reply traffic.
        let _ = stream.set_nodelay(true);
        let admission = admit(&ctx, &stream, peer);
        let span = match &admission {
            Admission::Admitted(admitted) => tracing::info_span!("conn", id = admitted.id, %peer),
            _ => tracing::info_span!("conn", %peer),
        };
        let ctx = ctx.clone();
        let alive = alive_tx.clone();
        let tls = tls.clone();
        tokio::spawn(
            async move {
                let _alive = alive;
                match tls {
                    None => serve_client(stream, &ctx, admission).await,
                    // Over the cap, a TLS client is closed without a
                    // handshake: the cap must also bound handshakes.
                    Some(_) if matches!(admission, Admission::Full) => drop(stream),
                    Some(tls) => {
                        // A pending handshake holds its client slot, so the
                        // number of handshakes in flight is capped too.
                        let handshake = tls.acceptor.accept(stream);
                        match tokio::time::timeout(tls.handshake_timeout, handshake).await {
                            Ok(Ok(stream)) => serve_client(stream, &ctx, admission).await,
                            Ok(Err(error)) => {
                                tls.refused
                                    .note(peer, &format!("resp tls handshake: {error}"));
                            }
                            Err(_) => {
                                tls.refused.note(peer, "resp tls handshake timed out");
                            }
                        }
                    }
                }
            }
            .instrument(span),
        );
    }
    ctx.inner.clients.kill_all();
    drop(alive_tx);
    let drain = Duration::from_millis(ctx.limits().request_timeout_ms) + Duration::from_secs(1);
    if tokio::time::timeout(drain, alive_rx.recv()).await.is_err() {
        tracing::warn!("client connections still open after the shutdown drain period");
    }
}

/// Applies the client cap and protected mode to a new connection and, when
/// it is admitted, registers it (before its task starts, so a shutdown's
/// `kill_all` reaches every connection).
fn admit(ctx: &ServerContext, stream: &TcpStream, peer: std::net::SocketAddr) -> Admission {
    let Some(slot) = ctx.try_admit() else {
        ctx.inner
            .refused_clients
            .note(peer, "max number of clients reached");
        return Admission::Full;
    };
    let users = command::Env::users(ctx);
    if protected_mode_refuses(ctx.inner.auth.protected_mode, &users, peer.ip()) {
        tracing::debug!(%peer, "protected mode: non-local client refused");
        return Admission::Protected(slot);
    }
    let id = ctx.next_client_id();
    // The connection closes when this flag turns true: on shutdown, or
    // when CLIENT KILL picks it.
    let (kill_tx, kill_rx) = watch::channel(false);
    let mut session = command::Session::new(id, Some(peer), stream.local_addr().ok());
    session.reset_user(&users);
    let fd = i64::from(std::os::fd::AsRawFd::as_raw_fd(stream));
    let registration = ctx.inner.clients.register(&session, fd, kill_tx);
    session.client = Some(registration.shared.clone());
    Admission::Admitted(Box::new(Admitted {
        slot,
        session,
        registration,
        kill_rx,
        id,
    }))
}

/// Answers one connection (plain, or TLS after its handshake) as `admission` says.
async fn serve_client<S>(mut stream: S, ctx: &ServerContext, admission: Admission)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let admitted = match admission {
        Admission::Full => {
            let _ = stream.write_all(MAX_CLIENTS_REPLY).await;
            let _ = stream.shutdown().await;
            return;
        }
        Admission::Protected(slot) => {
            let _slot = slot;
            let _ = stream.write_all(PROTECTED_MODE_REPLY).await;
            let _ = stream.shutdown().await;
            return;
        }
        Admission::Admitted(admitted) => *admitted,
    };
    let Admitted {
        slot,
        session,
        registration,
        kill_rx,
        id,
    } = admitted;
    let _slot = slot;
    let _registration = registration;
    tracing::debug!("client connected");
    let limits = codec::FrameLimits::from(ctx.limits());
    let counters = Some(ctx.counters());
    let account = client_limits::ClientAccount::tracked(ctx.client_limits().clone(), id);
    let served = connection::run(stream, ctx, session, limits, counters, kill_rx, account).await;
    match served {
        Ok(()) => tracing::debug!("client disconnected"),
        Err(error) => tracing::debug!(%error, "client connection failed"),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;
    use crate::config::Config;
    use crate::node::Node;

    fn single_node_config(dir: &std::path::Path) -> Config {
        let mut config = Config::single_node_for_tests(dir);
        config.limits.max_clients = 1;
        config
    }

    /// Reads until `expected.len()` bytes arrived (or EOF) and returns them.
    async fn read_n(stream: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        let mut got = 0;
        while got < n {
            match stream.read(&mut buf[got..]).await.expect("socket open") {
                0 => break,
                read => got += read,
            }
        }
        buf.truncate(got);
        buf
    }

    /// Against a real single node: pipelined SET/GET/DEL over TCP, the client cap
    /// with Redis's text, and a graceful shutdown that closes idle clients.
    #[tokio::test]
    async fn serves_a_real_node_with_client_cap_and_shutdown() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = single_node_config(dir.path());
        let node = Node::start(&config, Metrics::new())
            .await
            .expect("node starts");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("bound");
        let facts = ServerFacts::new(addr.port(), None, None, config.limits.max_clients);
        let ctx = ServerContext::new(node.handle(), config.limits.clone(), Metrics::new(), facts);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, ctx, async {
            let _ = stop_rx.await;
        }));

        let mut first = TcpStream::connect(addr).await.expect("connect");
        first
            .write_all(b"SET k v\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\nEXISTS k k\r\nDEL k\r\nGET k\r\n")
            .await
            .expect("send");
        let expected = b"+OK\r\n$1\r\nv\r\n:2\r\n:1\r\n$-1\r\n";
        assert_eq!(read_n(&mut first, expected.len()).await, expected);

        let mut second = TcpStream::connect(addr).await.expect("connect");
        let refused = b"-ERR max number of clients reached\r\n";
        assert_eq!(read_n(&mut second, refused.len() + 1).await, refused);

        stop_tx.send(()).expect("server running");
        server.await.expect("serve returns after shutdown");
        assert!(read_n(&mut first, 1).await.is_empty(), "closed on shutdown");
        node.shutdown().await.expect("node stops");
    }
}

#[cfg(test)]
mod protected_mode_tests {
    use super::protected_mode_refuses;
    use crate::acl::{AclOp, Users};

    /// Redis 7.0 counts exactly 127.0.0.1 and ::1 as local: the rest of
    /// 127/8 is refused like any remote address, while no password is set.
    #[test]
    fn only_127_0_0_1_and_ipv6_loopback_are_local() {
        let open = Users::default();
        let refused = |users: &Users, addr: &str, on: bool| {
            protected_mode_refuses(on, users, addr.parse().unwrap())
        };
        assert!(!refused(&open, "127.0.0.1", true));
        assert!(!refused(&open, "::1", true));
        assert!(!refused(&open, "::ffff:127.0.0.1", true));
        assert!(refused(&open, "127.0.0.2", true));
        assert!(refused(&open, "10.1.2.3", true));
        assert!(refused(&open, "fe80::1", true));
        assert!(!refused(&open, "10.1.2.3", false));
        let mut locked = Users::default();
        locked
            .apply(&AclOp::SetUser {
                name: "default".into(),
                rules: crate::acl::user::requirepass_rules(b"pw"),
            })
            .unwrap();
        assert!(!refused(&locked, "10.1.2.3", true));
    }
}

#[cfg(test)]
mod tls_listener_tests {
    use std::time::Duration;

    use super::TlsListener;
    use crate::config::{AuthClients, ClientTlsConfig};

    /// A missing or unusable file fails the load with the file's name.
    #[test]
    fn load_errors_name_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = crate::tls::generate_ca("t", 1).expect("ca");
        crate::tls::write_ca(dir.path(), &ca, false).expect("write ca");
        let node =
            crate::tls::generate_node_cert(&ca, crate::raft::NodeId(1), &[], 1).expect("node cert");
        let (cert, key) = crate::tls::write_node(dir.path(), crate::raft::NodeId(1), &node, false)
            .expect("write node");
        let missing = dir.path().join("missing-ca.pem");
        let mut config = ClientTlsConfig {
            cert_path: cert.clone(),
            key_path: key.clone(),
            ca_cert_path: Some(dir.path().join(crate::tls::CA_CERT_FILE)),
            auth_clients: AuthClients::Yes,
            handshake_timeout_ms: 1_000,
        };
        let interval = Duration::from_secs(1);
        TlsListener::load(&config, interval).expect("good files load");
        config.ca_cert_path = Some(missing.clone());
        let err = TlsListener::load(&config, interval)
            .err()
            .expect("missing CA refused");
        assert!(
            err.to_string().contains(&missing.display().to_string()),
            "{err}"
        );
        config.auth_clients = AuthClients::No;
        TlsListener::load(&config, interval).expect("no client certs: the CA is not read");
        config.key_path = cert.clone();
        let err = TlsListener::load(&config, interval)
            .err()
            .expect("a certificate is not a key");
        assert!(
            err.to_string().contains(&cert.display().to_string()),
            "{err}"
        );
    }
}

#[cfg(test)]
mod serve_tls_tests {
    use std::sync::Arc;
    use std::time::Duration;

    use rustls_pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::config::{AuthClients, ClientTlsConfig, Config};
    use crate::node::Node;

    /// A connection that never finishes its handshake holds its client slot
    /// until the handshake timeout closes it, without delaying other TLS
    /// clients; over the cap a connection is closed without a handshake.
    #[tokio::test]
    async fn stalled_handshakes_time_out_and_the_cap_holds() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = crate::tls::generate_ca("t", 1).expect("ca");
        crate::tls::write_ca(dir.path(), &ca, false).expect("write ca");
        let node_cert = crate::tls::generate_node_cert(
            &ca,
            crate::raft::NodeId(1),
            &["127.0.0.1".to_string()],
            1,
        )
        .expect("cert");
        let (cert_path, key_path) =
            crate::tls::write_node(dir.path(), crate::raft::NodeId(1), &node_cert, false)
                .expect("write");
        let ca_path = dir.path().join(crate::tls::CA_CERT_FILE);
        let tls = TlsListener::load(
            &ClientTlsConfig {
                cert_path,
                key_path,
                ca_cert_path: None,
                auth_clients: AuthClients::No,
                handshake_timeout_ms: 300,
            },
            Duration::from_secs(1),
        )
        .expect("tls loads");
        let connector = tokio_rustls::TlsConnector::from(Arc::new(
            crate::tls::client_config(&ca_path, None).expect("client config"),
        ));

        let mut config = Config::single_node_for_tests(&dir.path().join("data"));
        config.limits.max_clients = 2;
        let node = Node::start(&config, Metrics::new())
            .await
            .expect("node starts");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("bound");
        let facts = ServerFacts::new(addr.port(), None, None, config.limits.max_clients);
        let ctx = ServerContext::new(node.handle(), config.limits.clone(), Metrics::new(), facts);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_tls(listener, ctx, tls, async {
            let _ = stop_rx.await;
        }));

        // Slot 1: a connection that sends nothing.
        let mut stalled = TcpStream::connect(addr).await.expect("connect");
        // Slot 2: a TLS client, served while the first one stalls.
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = ServerName::try_from("127.0.0.1").expect("ip name");
        let mut served = connector.connect(name, tcp).await.expect("handshake");
        served.write_all(b"PING\r\n").await.expect("send");
        let mut reply = vec![0; 7];
        served.read_exact(&mut reply).await.expect("reply");
        assert_eq!(reply, b"+PONG\r\n");
        // Over the cap: closed before any handshake, so a TLS client's
        // handshake fails (it would succeed if the server answered it).
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = ServerName::try_from("127.0.0.1").expect("ip name");
        let over = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
            .await
            .expect("closed, not left hanging");
        assert!(over.is_err(), "an over-cap client got a handshake");
        let mut buf = [0u8; 64];
        // The stalled handshake is closed by the timeout, freeing its slot.
        let read = tokio::time::timeout(Duration::from_secs(10), stalled.read(&mut buf))
            .await
            .expect("stalled handshake closed by the timeout");
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "stalled got bytes: {read:?}"
        );
        let mut ok = false;
        for _ in 0..50 {
            // The slot is freed when the task ends, just after the close.
            let tcp = TcpStream::connect(addr).await.expect("connect");
            let name = ServerName::try_from("127.0.0.1").expect("ip name");
            if let Ok(mut tls) = connector.connect(name, tcp).await {
                let mut reply = vec![0; 7];
                if tls.write_all(b"PING\r\n").await.is_ok()
                    && tls.read_exact(&mut reply).await.is_ok()
                    && reply == b"+PONG\r\n"
                {
                    ok = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(ok, "the timed-out handshake's slot was not freed");
        drop(served);
        stop_tx.send(()).expect("server running");
        server.await.expect("serve returns");
        node.shutdown().await.expect("node stops");
    }
}
