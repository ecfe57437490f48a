//! The HTTP listener: peer RPC routes (see `transport` for the wire format) and the
//! operator routes `/metrics` (Prometheus text), `/status` (JSON), `/health`
//! and `POST /admin/transfer-leader[?to=ID]`.
//!
//! Two kinds of listener ([`Routes`]):
//! - the peer listener (`http_addr`) serves every route. With peer TLS it speaks
//!   only mutual TLS: a client must present a certificate chaining to the cluster
//!   CA to finish the handshake, and a peer route is served only when that
//!   certificate names the member id the request claims in `x-dkv-from` and that
//!   id is a configured peer ([`PeerAuth`]). With `insecure_peer_rpc` it is
//!   plain HTTP and the headers are all there is.
//! - the operator listener (`metrics_addr`, plain HTTP) serves `/metrics`,
//!   `/health`, `/status` and `/admin/*`, never a peer route, so Prometheus and
//!   `dkv-cli` need no certificate.
//!
//! `/admin/*` needs the admin bearer token on either listener (compared in
//! constant time); without a configured token the admin routes are refused.
//!
//! Peer requests must also name this node's cluster; anything else is refused
//! with `403` before its body is decoded. Every listener bounds its open
//! connections, the time a connection may take to send its headers (and its TLS
//! handshake), and every request body (operator routes: `max_admin_body_bytes`;
//! peer routes: `max_body_bytes`, and so is each frame of a message stream).
//! Refused connections and requests are logged at most once per interval, with
//! a count ([`RefusedLog`]).

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::PrometheusHandle;
use rustls_pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::node::NodeHandle;
use crate::raft::{Envelope, NodeId};
use crate::transport::{
    self, CLUSTER_HEADER, FORWARD_BATCHES_PATH, FORWARD_PATH, FORWARD_STREAM_PATH, FROM_HEADER,
    MSG_PATH, READ_INDEX_PATH, SNAPSHOT_PATH, STREAM_PATH,
};

/// Which routes a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routes {
    /// The peer listener: peer RPC and the operator routes.
    Peer,
    /// The operator listener: `/metrics`, `/health`, `/status`, `/admin/*` only.
    Operator,
}

/// What a connection proved about its sender, decided once per connection.
#[derive(Clone, Debug)]
pub enum PeerAuth {
    /// The operator listener: peer routes do not exist here.
    NotPeer,
    /// A plain peer listener (`insecure_peer_rpc`): the headers are believed.
    Insecure,
    /// Mutual TLS: the client's leaf certificate, verified against the cluster
    /// CA during the handshake.
    Verified(CertificateDer<'static>),
}

/// Bounds of one HTTP listener.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Time to send the request headers (and to finish the TLS handshake).
    pub header_read_timeout: Duration,
    /// Most open connections; more are closed at accept.
    pub max_connections: usize,
    /// Largest body on operator routes.
    pub max_admin_body_bytes: usize,
}

/// Counts refused connections and requests and logs them at most once per
/// interval: anyone who can reach the port can cause refusals, so one line
/// per refusal would let them fill the disk.
pub struct RefusedLog {
    what: &'static str,
    interval: Duration,
    state: Mutex<RefusedState>,
}

struct RefusedState {
    last_logged: Option<Instant>,
    unlogged: u64,
}

impl RefusedLog {
    /// A log of refused `what` ("http requests", "client connections")
    /// that writes at most one line per `interval`.
    pub fn new(what: &'static str, interval: Duration) -> Self {
        RefusedLog {
            what,
            interval,
            state: Mutex::new(RefusedState {
                last_logged: None,
                unlogged: 0,
            }),
        }
    }

    /// Counts one refusal; logs it with the refusals counted since the last line
    /// when an interval has passed. Returns whether a line was written.
    pub fn note(&self, peer: std::net::SocketAddr, reason: &str) -> bool {
        let now = Instant::now();
        let mut state = match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        };
        state.unlogged += 1;
        let due = state
            .last_logged
            .is_none_or(|last| now.duration_since(last) >= self.interval);
        if !due {
            return false;
        }
        let refused = std::mem::take(&mut state.unlogged);
        state.last_logged = Some(now);
        drop(state);
        warn!(refused, last_from = %peer, last_reason = reason, "{} refused", self.what);
        true
    }
}

/// What the HTTP routes need.
#[derive(Clone)]
pub struct HttpState {
    /// The local node.
    pub node: NodeHandle,
    /// Renders `/metrics`; `None` when no recorder is installed in this process.
    pub prometheus: Option<PrometheusHandle>,
    /// The RESP server whose statistics `/metrics` adds at scrape time
    /// (`server/exposition.rs`); `None`: only the recorder's families.
    pub exposition: Option<crate::server::ServerContext>,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// How long `/admin/transfer-leader` waits for the target to take over.
    pub transfer_timeout: std::time::Duration,
    /// The bearer token `/admin/*` requires; `None` refuses every admin request.
    pub admin_token: Option<Arc<[u8]>>,
    /// Connection and request bounds.
    pub limits: HttpLimits,
    /// Where refusals are counted.
    pub refused: Arc<RefusedLog>,
    /// The node's client connections (`/admin/clients`); `None`: no RESP
    /// listener in this process.
    pub clients: Option<Arc<crate::server::commands::clients::ClientRegistry>>,
    /// Backups being streamed (`/admin/backup`): one at a time.
    pub backups: Arc<Semaphore>,
}

/// A response body: whole, or streamed (`/admin/backup`).
type HttpBody = http_body_util::Either<Full<Bytes>, crate::transport::FrameBody>;

/// Payload bytes per chunk of a backup.
const BACKUP_CHUNK_BYTES: usize = 1 << 20;
/// Chunks of a backup encoded ahead of the client.
const BACKUP_CHUNKS_AHEAD: usize = 4;
/// A backup whose client takes nothing for this long is abandoned (the
/// client sees a file without its trailer and refuses it).
const BACKUP_STALL: Duration = Duration::from_secs(60);

/// Serves HTTP on `listener` until `shutdown` completes: `routes` says which
/// routes exist; with `tls`, every connection must finish a TLS handshake first
/// (the peer listener's config requires a client certificate).
pub async fn serve(
    listener: TcpListener,
    state: HttpState,
    routes: Routes,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) {
    let state = Arc::new(state);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let open = Arc::new(Semaphore::new(state.limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    warn!(error = %e, "http accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            state.refused.note(peer, "too many open http connections");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let timeout = state.limits.header_read_timeout;
            match acceptor {
                None => {
                    let auth = match routes {
                        Routes::Peer => PeerAuth::Insecure,
                        Routes::Operator => PeerAuth::NotPeer,
                    };
                    serve_connection(state, TokioIo::new(stream), peer, auth).await;
                }
                Some(acceptor) => {
                    let stream = match tokio::time::timeout(timeout, acceptor.accept(stream)).await
                    {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            state.refused.note(peer, &format!("tls handshake: {e}"));
                            return;
                        }
                        Err(_) => {
                            state.refused.note(peer, "tls handshake timed out");
                            return;
                        }
                    };
                    let leaf = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .map(|cert| cert.clone().into_owned());
                    let auth = match (routes, leaf) {
                        (Routes::Peer, Some(leaf)) => PeerAuth::Verified(leaf),
                        _ => PeerAuth::NotPeer,
                    };
                    serve_connection(state, TokioIo::new(stream), peer, auth).await;
                }
            }
        });
    }
}

async fn serve_connection<I>(
    state: Arc<HttpState>,
    io: TokioIo<I>,
    peer: std::net::SocketAddr,
    auth: PeerAuth,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let timeout = state.limits.header_read_timeout;
    let auth = Arc::new(auth);
    let service = service_fn(move |request| {
        let state = state.clone();
        let auth = auth.clone();
        async move {
            if request.method() == Method::GET && request.uri().path() == "/admin/backup" {
                return Ok::<_, Infallible>(backup(&state, peer, request).await);
            }
            if request.method() == Method::POST && request.uri().path() == FORWARD_STREAM_PATH {
                return Ok::<_, Infallible>(forward_stream(&state, &auth, peer, request));
            }
            Ok::<_, Infallible>(
                route(&state, &auth, peer, request)
                    .await
                    .map(http_body_util::Either::Left),
            )
        }
    });
    if let Err(e) = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .serve_connection(io, service)
        .await
    {
        debug!(%peer, error = %e, "http connection ended with an error");
    }
}

async fn route(
    state: &HttpState,
    auth: &PeerAuth,
    peer: std::net::SocketAddr,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    if path.starts_with("/raft/") {
        if let Some(refusal) = refuse_non_peer(state, auth, peer) {
            return refusal;
        }
        return match (request.method(), path) {
            (&Method::POST, STREAM_PATH) => message_stream(state, auth, peer, request).await,
            (&Method::POST, MSG_PATH) => {
                peer_route(state, auth, peer, request, PeerRoute::Messages).await
            }
            (&Method::POST, FORWARD_PATH) => {
                peer_route(state, auth, peer, request, PeerRoute::Forward).await
            }
            (&Method::POST, FORWARD_BATCHES_PATH) => {
                peer_route(state, auth, peer, request, PeerRoute::ForwardBatches).await
            }
            (&Method::POST, READ_INDEX_PATH) => {
                peer_route(state, auth, peer, request, PeerRoute::ReadIndex).await
            }
            (&Method::POST, SNAPSHOT_PATH) => {
                peer_route(state, auth, peer, request, PeerRoute::Snapshot).await
            }
            _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
        };
    }
    // Operator routes take no body worth more than a few bytes; read (and
    // bound) whatever was sent so a client cannot park data on the connection.
    let (parts, body) = request.into_parts();
    if let Err(e) = Limited::new(body, state.limits.max_admin_body_bytes)
        .collect()
        .await
    {
        state.refused.note(peer, "operator request body too large");
        return reply(
            StatusCode::PAYLOAD_TOO_LARGE,
            "text/plain",
            format!("body: {e}\n"),
        );
    }
    match (&parts.method, parts.uri.path()) {
        (&Method::POST, "/admin/transfer-leader") => {
            if let Err(refusal) = check_admin(state, &parts.headers, peer) {
                return refusal;
            }
            transfer_leader(state, parts.uri.query()).await
        }
        (&Method::POST, "/admin/members") => {
            if let Err(refusal) = check_admin(state, &parts.headers, peer) {
                return refusal;
            }
            change_members(state, parts.uri.query()).await
        }
        (&Method::GET, "/admin/clients") => {
            if let Err(refusal) = check_admin(state, &parts.headers, peer) {
                return refusal;
            }
            // CLIENT LIST of this node: client ids, CLIENT KILL and the
            // connections themselves are per node; `dkv-cli clients` asks
            // every node and tags each line with its node.
            let text = state
                .clients
                .as_ref()
                .map_or_else(String::new, |clients| clients.list());
            reply(StatusCode::OK, "text/plain", text)
        }
        (&Method::GET, "/metrics") => match &state.prometheus {
            Some(handle) => {
                let mut text = handle.render();
                if let Some(server) = &state.exposition {
                    crate::server::exposition::render(server, &mut text);
                }
                reply(StatusCode::OK, "text/plain; version=0.0.4", text)
            }
            None => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "no metrics recorder installed\n",
            ),
        },
        (&Method::GET, "/status") => {
            let view = StatusView {
                status: state.node.status(),
                members: member_list(&state.node.members()),
            };
            match serde_json::to_string(&view) {
                Ok(json) => reply(StatusCode::OK, "application/json", json),
                Err(e) => reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    format!("status: {e}\n"),
                ),
            }
        }
        (&Method::GET, "/health") => {
            let status = state.node.status();
            if status.loading {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "application/json",
                    r#"{"health":"false","reason":"loading"}"#,
                )
            } else if status.leader.is_none() {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "application/json",
                    r#"{"health":"false","reason":"no leader"}"#,
                )
            } else {
                reply(StatusCode::OK, "application/json", r#"{"health":"true"}"#)
            }
        }
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

/// Refuses an admin request without the configured bearer token.
#[allow(clippy::result_large_err)]
fn check_admin(
    state: &HttpState,
    headers: &http::HeaderMap,
    peer: std::net::SocketAddr,
) -> Result<(), Response<Full<Bytes>>> {
    let Some(token) = &state.admin_token else {
        state
            .refused
            .note(peer, "admin request: no admin token configured");
        return Err(reply(
            StatusCode::FORBIDDEN,
            "text/plain",
            "admin routes are disabled: no admin_token_path configured\n",
        ));
    };
    let presented = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or(b"");
    if constant_time_eq(presented, token) {
        return Ok(());
    }
    state
        .refused
        .note(peer, "admin request: missing or wrong token");
    let mut refusal = reply(
        StatusCode::UNAUTHORIZED,
        "text/plain",
        "admin token missing or wrong\n",
    );
    refusal.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer"),
    );
    Err(refusal)
}

/// Compares two secrets in time that depends only on their lengths, not on
/// where they first differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// `GET /admin/backup` (admin token): streams a backup file
/// (`store/backup.rs`) of this node's map, taken as a linearizable read
/// (`node/backup.rs`). A failure before the first byte is an HTTP error; one
/// after it cuts the body short, which the file's trailer reveals.
async fn backup(
    state: &HttpState,
    peer: std::net::SocketAddr,
    request: Request<Incoming>,
) -> Response<HttpBody> {
    use http_body_util::Either;
    if let Err(refusal) = check_admin(state, request.headers(), peer) {
        return refusal.map(Either::Left);
    }
    drop(request);
    let Ok(permit) = state.backups.clone().try_acquire_owned() else {
        return reply(
            StatusCode::CONFLICT,
            "text/plain",
            "a backup is already being taken on this node\n",
        )
        .map(Either::Left);
    };
    let (header, chunks) = match state.node.backup(BACKUP_CHUNK_BYTES).await {
        Ok(copy) => copy,
        Err(e) => {
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("backup: {e}\n"),
            )
            .map(Either::Left)
        }
    };
    info!(
        %peer,
        index = header.index,
        term = header.term,
        "backup started"
    );
    let (tx, rx) = tokio::sync::mpsc::channel(BACKUP_CHUNKS_AHEAD);
    // Encoding is CPU work: it runs on a blocking thread, at the client's
    // pace (the channel is bounded), and gives up on a stalled client.
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        use crate::store::backup::{encode_header, BackupWriter};
        if !send_bounded(&tx, encode_header(&header)) {
            return;
        }
        let mut writer = BackupWriter::default();
        for chunk in chunks {
            if let Some(framed) = writer.push(&chunk) {
                if !send_bounded(&tx, framed) {
                    warn!("backup abandoned: the client stopped reading");
                    return;
                }
            }
        }
        let _ = send_bounded(&tx, writer.finish());
    });
    let mut response = Response::new(Either::Right(crate::transport::FrameBody::new(rx)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/octet-stream"),
    );
    response
}

/// Hands `frame` to a streamed body; false once the body is gone or its
/// reader took nothing for [`BACKUP_STALL`]. Blocking.
fn send_bounded(tx: &tokio::sync::mpsc::Sender<Bytes>, mut frame: Bytes) -> bool {
    use tokio::sync::mpsc::error::TrySendError;
    let deadline = Instant::now() + BACKUP_STALL;
    loop {
        match tx.try_send(frame) {
            Ok(()) => return true,
            Err(TrySendError::Closed(_)) => return false,
            Err(TrySendError::Full(back)) => {
                if Instant::now() >= deadline {
                    return false;
                }
                frame = back;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// `POST /admin/transfer-leader[?to=ID]`: hands leadership to `ID` (or a peer
/// of the leader's choosing) and answers once this node sees the new leader.
async fn transfer_leader(state: &HttpState, query: Option<&str>) -> Response<Full<Bytes>> {
    let to = match query
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("to="))
    {
        None => None,
        Some(raw) => match raw.parse::<u64>() {
            Ok(id) => Some(NodeId(id)),
            Err(_) => {
                let body =
                    serde_json::json!({ "ok": false, "error": format!("to={raw}: not a node id") });
                return reply(
                    StatusCode::BAD_REQUEST,
                    "application/json",
                    body.to_string(),
                );
            }
        },
    };
    let timeout = state.transfer_timeout;
    match state.node.transfer_leader(to, timeout).await {
        Ok(leader) => {
            let body = serde_json::json!({ "ok": true, "leader": leader.0, "term": state.node.status().term.0 });
            reply(StatusCode::OK, "application/json", body.to_string())
        }
        Err(e) => {
            let body = serde_json::json!({ "ok": false, "error": e.to_string() });
            reply(StatusCode::CONFLICT, "application/json", body.to_string())
        }
    }
}

/// `/status`: the node's status and the members it knows.
#[derive(serde::Serialize)]
struct StatusView {
    #[serde(flatten)]
    status: crate::node::NodeStatus,
    members: Vec<serde_json::Value>,
}

fn member_list(membership: &crate::raft::Membership) -> Vec<serde_json::Value> {
    membership
        .members
        .iter()
        .map(|(id, m)| {
            serde_json::json!({
                "id": id.0,
                "voter": m.voter,
                "resp_addr": m.resp_addr.to_string(),
                "http_addr": m.http_addr.to_string(),
            })
        })
        .collect()
}

/// `POST /admin/members?op=add|promote|remove|move&id=N[&resp=ADDR&http=ADDR]`:
/// one membership change, answered once it is committed (or refused).
/// 200 `{"ok":true,"index":N,"members":[...]}`; 400 for a change that can
/// never be made, 409 for one to retry (not the leader, a change in
/// flight, a learner catching up, an unknown outcome).
async fn change_members(state: &HttpState, query: Option<&str>) -> Response<Full<Bytes>> {
    use crate::node::members::{MemberChange, MemberError};
    let refuse = |status: StatusCode, error: String| {
        let body = serde_json::json!({ "ok": false, "error": error });
        reply(status, "application/json", body.to_string())
    };
    let params: Vec<(&str, &str)> = query
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .collect();
    let param = |name: &str| params.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    let id = match param("id").map(str::parse::<u64>) {
        Some(Ok(id)) => NodeId(id),
        Some(Err(_)) => return refuse(StatusCode::BAD_REQUEST, "id: not a node id".to_string()),
        None => return refuse(StatusCode::BAD_REQUEST, "id is required".to_string()),
    };
    let addr = |name: &str| -> Result<std::net::SocketAddr, String> {
        match param(name) {
            Some(raw) => raw
                .parse()
                .map_err(|_| format!("{name}={raw}: not a host:port address")),
            None => Err(format!("{name} is required")),
        }
    };
    let addrs = || addr("resp").and_then(|resp| addr("http").map(|http| (resp, http)));
    let change = match param("op") {
        Some("add") => match addrs() {
            Ok((resp_addr, http_addr)) => MemberChange::AddLearner {
                id,
                resp_addr,
                http_addr,
            },
            Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
        },
        Some("move") => match addrs() {
            Ok((resp_addr, http_addr)) => MemberChange::Move {
                id,
                resp_addr,
                http_addr,
            },
            Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
        },
        Some("promote") => MemberChange::Promote { id },
        Some("remove") => MemberChange::Remove { id },
        _ => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "op must be add, promote, remove or move".to_string(),
            )
        }
    };
    match state
        .node
        .change_membership(change, state.transfer_timeout)
        .await
    {
        Ok(index) => {
            let body = serde_json::json!({
                "ok": true,
                "index": index.0,
                "members": member_list(&state.node.members()),
            });
            reply(StatusCode::OK, "application/json", body.to_string())
        }
        Err(e @ MemberError::Invalid(_)) => refuse(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => refuse(StatusCode::CONFLICT, e.to_string()),
    }
}

#[derive(Clone, Copy)]
enum PeerRoute {
    Messages,
    Forward,
    ForwardBatches,
    ReadIndex,
    Snapshot,
}

async fn peer_route(
    state: &HttpState,
    auth: &PeerAuth,
    peer: std::net::SocketAddr,
    request: Request<Incoming>,
    kind: PeerRoute,
) -> Response<Full<Bytes>> {
    let from = match check_peer(state, auth, peer, &request) {
        Ok(from) => from,
        Err(refusal) => return refusal,
    };
    let body = match Limited::new(request.into_body(), state.max_body_bytes)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                "text/plain",
                format!("body: {e}\n"),
            )
        }
    };
    let node = &state.node;
    match kind {
        PeerRoute::Messages => match deliver_batch(node, from, transport::decode(&body)) {
            Ok(_) => reply(StatusCode::NO_CONTENT, "text/plain", ""),
            Err(refusal) => refusal,
        },
        PeerRoute::Forward => {
            let ops: Vec<crate::kv::Op> = match transport::decode(&body) {
                Ok(ops) => ops,
                Err(e) => {
                    return reply(
                        StatusCode::BAD_REQUEST,
                        "text/plain",
                        format!("bad forwarded write: {e}\n"),
                    )
                }
            };
            let answer = node.write_as_leader(from, ops).await;
            reply(
                StatusCode::OK,
                "application/octet-stream",
                transport::encode(&answer),
            )
        }
        PeerRoute::ForwardBatches => {
            let batches = match transport::decode_batches(&body) {
                Ok(batches) => batches,
                Err(e) => {
                    return reply(
                        StatusCode::BAD_REQUEST,
                        "text/plain",
                        format!("bad forwarded write: {e}\n"),
                    )
                }
            };
            let answer = node.write_batches_as_leader(from, batches).await;
            reply(
                StatusCode::OK,
                "application/octet-stream",
                transport::encode(&answer),
            )
        }
        PeerRoute::ReadIndex => {
            let answer = node.read_index_as_leader().await;
            reply(
                StatusCode::OK,
                "application/octet-stream",
                transport::encode(&answer),
            )
        }
        PeerRoute::Snapshot => {
            let chunk = match transport::decode(&body) {
                Ok(chunk) => chunk,
                Err(e) => {
                    return reply(
                        StatusCode::BAD_REQUEST,
                        "text/plain",
                        format!("bad snapshot chunk: {e}\n"),
                    )
                }
            };
            match node.receive_snapshot_chunk(from, chunk).await {
                Ok(()) => reply(StatusCode::NO_CONTENT, "text/plain", ""),
                Err(reason) => reply(StatusCode::CONFLICT, "text/plain", format!("{reason}\n")),
            }
        }
    }
}

/// Hands Raft messages from peer `from` to the node once each names `from` as
/// its sender and this node as its recipient. `Ok(false)`: the node has
/// stopped taking messages.
#[allow(clippy::result_large_err)]
fn deliver_batch(
    node: &NodeHandle,
    from: NodeId,
    envelopes: Result<Vec<Envelope>, postcard::Error>,
) -> Result<bool, Response<Full<Bytes>>> {
    let envelopes = envelopes.map_err(|e| {
        reply(
            StatusCode::BAD_REQUEST,
            "text/plain",
            format!("bad message batch: {e}\n"),
        )
    })?;
    if let Some(bad) = envelopes
        .iter()
        .find(|e| e.from != from || e.to != node.id())
    {
        return Err(reply(
            StatusCode::BAD_REQUEST,
            "text/plain",
            format!(
                "message from {} to {} sent by node {from} to node {}\n",
                bad.from,
                bad.to,
                node.id()
            ),
        ));
    }
    Ok(node.deliver(envelopes))
}

/// `POST /raft/stream`: frames of message batches from one peer, delivered as
/// they arrive, until the peer ends the stream. A bad frame ends it with an
/// error status (the peer reopens it); so does this node's driver stopping, so
/// a peer's stream never outlives the node it feeds.
async fn message_stream(
    state: &HttpState,
    auth: &PeerAuth,
    peer: std::net::SocketAddr,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let from = match check_peer(state, auth, peer, &request) {
        Ok(from) => from,
        Err(refusal) => return refusal,
    };
    let node = &state.node;
    let mut body = request.into_body();
    let mut buffer = BytesMut::new();
    loop {
        let data = match body.frame().await {
            None if buffer.is_empty() => return reply(StatusCode::NO_CONTENT, "text/plain", ""),
            None => {
                return reply(
                    StatusCode::BAD_REQUEST,
                    "text/plain",
                    format!(
                        "stream ended inside a frame ({} bytes left)\n",
                        buffer.len()
                    ),
                )
            }
            Some(Err(e)) => {
                return reply(
                    StatusCode::BAD_REQUEST,
                    "text/plain",
                    format!("stream: {e}\n"),
                )
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue, // trailers carry nothing for us
            },
        };
        buffer.extend_from_slice(&data);
        loop {
            match transport::take_frame(&mut buffer, state.max_body_bytes) {
                Ok(None) => break,
                Ok(Some(payload)) => {
                    match deliver_batch(node, from, transport::decode_frame(&payload)) {
                        Ok(true) => {}
                        Ok(false) => {
                            return reply(
                                StatusCode::SERVICE_UNAVAILABLE,
                                "text/plain",
                                "node stopping\n",
                            )
                        }
                        Err(refusal) => return refusal,
                    }
                }
                Err(e) => {
                    return reply(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "text/plain",
                        format!("{e}\n"),
                    )
                }
            }
        }
    }
}

/// A peer route asked for on a listener that serves none (the operator
/// port) is not found there; the attempt is noted.
fn refuse_non_peer(
    state: &HttpState,
    auth: &PeerAuth,
    peer: std::net::SocketAddr,
) -> Option<Response<Full<Bytes>>> {
    if !matches!(auth, PeerAuth::NotPeer) {
        return None;
    }
    state
        .refused
        .note(peer, "peer route without a peer credential");
    Some(reply(StatusCode::NOT_FOUND, "text/plain", "not found\n"))
}

/// Frames of a forward stream being proposed at once; past this the stream's
/// body is not read (the follower's frames wait in its TCP buffers).
const FORWARD_FRAMES_IN_FLIGHT: usize = 64;
/// Reply frames of a forward stream queued for its connection.
const FORWARD_REPLY_FRAMES: usize = 64;

/// `POST /raft/forward-stream`: a follower's forwarded writes (`transport`'s
/// `forward` module), answered on the same request as they commit. The
/// response head goes out at once; each frame of the body is proposed as it
/// arrives (at most [`FORWARD_FRAMES_IN_FLIGHT`] at a time) and its batches
/// answered by id in a reply frame. A bad frame ends the stream: the
/// follower reports the batches still on it as of unknown outcome.
fn forward_stream(
    state: &Arc<HttpState>,
    auth: &PeerAuth,
    peer: std::net::SocketAddr,
    request: Request<Incoming>,
) -> Response<HttpBody> {
    use http_body_util::Either;
    if let Some(refusal) = refuse_non_peer(state, auth, peer) {
        return refusal.map(Either::Left);
    }
    let from = match check_peer(state, auth, peer, &request) {
        Ok(from) => from,
        Err(refusal) => return refusal.map(Either::Left),
    };
    let (replies, body) = tokio::sync::mpsc::channel(FORWARD_REPLY_FRAMES);
    tokio::spawn(serve_forward_stream(
        state.clone(),
        peer,
        from,
        request.into_body(),
        replies,
    ));
    let mut response = Response::new(Either::Right(crate::transport::FrameBody::new(body)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/octet-stream"),
    );
    response
}

/// Reads a forward stream's frames and proposes each, until the follower
/// ends it, it goes bad, or the reply body is dropped (the connection
/// closed). The reply body ends once every frame read has been answered.
async fn serve_forward_stream(
    state: Arc<HttpState>,
    peer: std::net::SocketAddr,
    from: NodeId,
    mut body: Incoming,
    replies: tokio::sync::mpsc::Sender<Bytes>,
) {
    let in_flight = Arc::new(Semaphore::new(FORWARD_FRAMES_IN_FLIGHT));
    let mut buffer = BytesMut::new();
    loop {
        let data = tokio::select! {
            frame = body.frame() => match frame {
                None if buffer.is_empty() => return,
                None => {
                    state.refused.note(peer, "forward stream ended inside a frame");
                    return;
                }
                Some(Err(e)) => {
                    debug!(%peer, error = %e, "forward stream ended with an error");
                    return;
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue, // trailers carry nothing for us
                },
            },
            () = replies.closed() => return,
        };
        buffer.extend_from_slice(&data);
        loop {
            let payload = match transport::take_frame(&mut buffer, state.max_body_bytes) {
                Ok(Some(payload)) => payload,
                Ok(None) => break,
                Err(e) => {
                    state.refused.note(peer, &format!("forward stream: {e}"));
                    return;
                }
            };
            let batches = match transport::decode_forward_frame(&payload) {
                Ok(batches) => batches,
                Err(e) => {
                    state
                        .refused
                        .note(peer, &format!("bad forwarded write: {e}"));
                    return;
                }
            };
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                return;
            };
            let node = state.node.clone();
            let replies = replies.clone();
            tokio::spawn(async move {
                let (ids, batches): (Vec<u64>, Vec<Vec<crate::kv::Op>>) =
                    batches.into_iter().unzip();
                let answers = node.write_batches_as_leader(from, batches).await;
                let _ = replies
                    .send(transport::forward_reply_frame(ids.into_iter().zip(answers)))
                    .await;
                drop(permit);
            });
        }
    }
}

/// Refuses requests from another cluster, from an id that is not a configured
/// peer, and (with mTLS) from a connection whose certificate does not name the
/// id the request claims. Refusals do not tell the sender our cluster id.
#[allow(clippy::result_large_err)]
fn check_peer(
    state: &HttpState,
    auth: &PeerAuth,
    peer: std::net::SocketAddr,
    request: &Request<Incoming>,
) -> Result<NodeId, Response<Full<Bytes>>> {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    let refuse = |reason: &str| {
        state.refused.note(peer, reason);
        Err(reply(
            StatusCode::FORBIDDEN,
            "text/plain",
            format!("{reason}\n"),
        ))
    };
    if header(CLUSTER_HEADER).unwrap_or("") != state.node.cluster_id() {
        return refuse("peer request names another cluster");
    }
    let Some(from) = header(FROM_HEADER)
        .and_then(|v| v.parse::<u64>().ok())
        .map(NodeId)
        .filter(|&from| state.node.is_peer(from))
    else {
        return refuse("peer request from a sender that is not a member");
    };
    match auth {
        PeerAuth::Insecure => Ok(from),
        PeerAuth::Verified(leaf) if crate::tls::cert_names_node(leaf, from) => Ok(from),
        PeerAuth::Verified(_) => refuse("peer certificate does not name the sender id"),
        PeerAuth::NotPeer => refuse("peer route without a peer credential"),
    }
}

fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_equal_only_when_identical() {
        assert!(constant_time_eq(b"s3cret-token", b"s3cret-token"));
        assert!(!constant_time_eq(b"s3cret-token", b"s3cret-tokeN"));
        assert!(!constant_time_eq(b"s3cret-token", b"s3cret-toke"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn refusals_are_logged_once_per_interval_and_counted() {
        let log = RefusedLog::new("http requests", Duration::from_secs(3600));
        let peer: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert!(log.note(peer, "first"), "the first refusal is logged");
        for _ in 0..1000 {
            assert!(!log.note(peer, "flood"));
        }
        let state = log.state.lock().unwrap();
        assert_eq!(state.unlogged, 1000, "suppressed refusals are counted");
        drop(state);
        let zero = RefusedLog::new("http requests", Duration::ZERO);
        assert!(zero.note(peer, "a") && zero.note(peer, "b"));
    }
}
