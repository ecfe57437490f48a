//! The HTTP listener: peer RPC routes (see `transport` for the wire format) and the
//! operator routes `/metrics` (Prometheus text), `/status` (JSON), `/health`
//! and `POST /admin/transfer-leader[?to=ID]`.
//!
//! Peer requests must name this node's cluster and a configured peer; anything
//! else is refused with `403` before its body is decoded, so a node of another
//! cluster that was given our address cannot disturb us. Bodies are capped, and
//! so is each frame of a message stream.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tracing::{debug, warn};

use crate::node::NodeHandle;
use crate::raft::{Envelope, NodeId};
use crate::transport::{
    self, CLUSTER_HEADER, FORWARD_PATH, FROM_HEADER, MSG_PATH, READ_INDEX_PATH, SNAPSHOT_PATH,
    STREAM_PATH,
};

/// What the HTTP routes need.
#[derive(Clone)]
pub struct HttpState {
    /// The local node.
    pub node: NodeHandle,
    /// Renders `/metrics`; `None` when no recorder is installed in this process.
    pub prometheus: Option<PrometheusHandle>,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// How long `/admin/transfer-leader` waits for the target to take over.
    pub transfer_timeout: std::time::Duration,
}

/// Serves HTTP until `shutdown` completes.
pub async fn serve(listener: TcpListener, state: HttpState, shutdown: impl Future<Output = ()>) {
    let state = Arc::new(state);
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
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(&state, request).await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(%peer, error = %e, "http connection ended with an error");
            }
        });
    }
}

async fn route(state: &HttpState, request: Request<Incoming>) -> Response<Full<Bytes>> {
    match (request.method(), request.uri().path()) {
        (&Method::POST, STREAM_PATH) => message_stream(state, request).await,
        (&Method::POST, MSG_PATH) => peer_route(state, request, PeerRoute::Messages).await,
        (&Method::POST, FORWARD_PATH) => peer_route(state, request, PeerRoute::Forward).await,
        (&Method::POST, READ_INDEX_PATH) => peer_route(state, request, PeerRoute::ReadIndex).await,
        (&Method::POST, SNAPSHOT_PATH) => peer_route(state, request, PeerRoute::Snapshot).await,
        (&Method::POST, "/admin/transfer-leader") => {
            transfer_leader(state, request.uri().query()).await
        }
        (&Method::GET, "/metrics") => match &state.prometheus {
            Some(handle) => reply(StatusCode::OK, "text/plain; version=0.0.4", handle.render()),
            None => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "no metrics recorder installed\n",
            ),
        },
        (&Method::GET, "/status") => {
            let status = state.node.status();
            match serde_json::to_string(&status) {
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

#[derive(Clone, Copy)]
enum PeerRoute {
    Messages,
    Forward,
    ReadIndex,
    Snapshot,
}

async fn peer_route(
    state: &HttpState,
    request: Request<Incoming>,
    kind: PeerRoute,
) -> Response<Full<Bytes>> {
    let from = match check_peer(state, &request) {
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
async fn message_stream(state: &HttpState, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let from = match check_peer(state, &request) {
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

/// Refuses requests from another cluster or an unknown node.
#[allow(clippy::result_large_err)]
fn check_peer(
    state: &HttpState,
    request: &Request<Incoming>,
) -> Result<NodeId, Response<Full<Bytes>>> {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    let cluster = header(CLUSTER_HEADER).unwrap_or("");
    if cluster != state.node.cluster_id() {
        warn!(
            theirs = cluster,
            "peer request from another cluster refused"
        );
        return Err(reply(
            StatusCode::FORBIDDEN,
            "text/plain",
            format!("cluster id mismatch: this node is in cluster '{}', the request names '{cluster}'\n", state.node.cluster_id()),
        ));
    }
    match header(FROM_HEADER)
        .and_then(|v| v.parse::<u64>().ok())
        .map(NodeId)
    {
        Some(from) if state.node.is_peer(from) => Ok(from),
        other => Err(reply(
            StatusCode::FORBIDDEN,
            "text/plain",
            format!("sender {other:?} is not a member of cluster '{cluster}'\n"),
        )),
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
