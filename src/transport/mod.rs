//! Outbound peer RPC over HTTP/1.1 (hyper), with compact binary bodies (postcard).
//!
//! Routes (served by `server::http`):
//! - `POST /raft/msg`: a batch of Raft [`Envelope`]s, fire-and-forget (Raft replies
//!   are messages of their own). Answered `204` once queued for the driver.
//! - `POST /raft/forward`: client writes (a batch of [`kv::Op`]s, one
//!   connection's pipelined writes, in order) sent by a follower to the leader,
//!   which proposes them in that order; answered with a [`ForwardReply`].
//! - `POST /raft/read-index`: a follower asks the leader for a read index;
//!   answered with a [`ReadIndexReply`].
//! - `POST /raft/snapshot`: one [`SnapshotChunk`] of a snapshot the leader
//!   streams to a follower before it delivers the InstallSnapshot message
//!   (`node` module docs); answered `204` once written, `409` when the chunk
//!   does not continue the stream the follower is receiving.
//!
//! Every request carries the cluster id ([`CLUSTER_HEADER`]) and the sender's node
//! id ([`FROM_HEADER`]); a node rejects requests from another cluster.
//!
//! One sender task per peer drains that peer's bounded queue, batching what is
//! queued into one request, so a dead or slow peer only fills (and then drops from)
//! its own queue and never stalls the driver or the other peers. Dropping Raft
//! messages is always safe: the protocol retries.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::{debug, warn, Instrument};

use crate::kv;
use crate::node::RequestError;
use crate::raft::{Envelope, LogIndex, NodeId, SnapshotMeta};

/// Header naming the sender's cluster.
pub const CLUSTER_HEADER: &str = "x-dkv-cluster";
/// Header naming the sender's node id.
pub const FROM_HEADER: &str = "x-dkv-from";
/// Route for Raft message batches.
pub const MSG_PATH: &str = "/raft/msg";
/// Route for forwarded writes.
pub const FORWARD_PATH: &str = "/raft/forward";
/// Route for read-index requests.
pub const READ_INDEX_PATH: &str = "/raft/read-index";

/// Route for InstallSnapshot data chunks.
pub const SNAPSHOT_PATH: &str = "/raft/snapshot";

/// Messages queued per peer before new ones are dropped.
const PEER_QUEUE_MESSAGES: usize = 1024;
/// Most messages sent in one `/raft/msg` request.
const MAX_BATCH_MESSAGES: usize = 256;
/// Deadline for one `/raft/msg` request.
const MSG_TIMEOUT: Duration = Duration::from_millis(1000);

/// The leader's answer to a forwarded batch of writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ForwardReply {
    /// Each write's fate, in order: the output of apply, or why it failed.
    Done(Vec<Result<kv::Output, RequestError>>),
    /// The receiver is not the leader; no write of the batch was appended.
    NotLeader {
        /// The leader it knows of.
        leader: Option<NodeId>,
    },
    /// The whole batch failed on the leader as described.
    Failed(RequestError),
}

/// The leader's answer to a read-index request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadIndexReply {
    /// Reads that wait for `index` to be applied are linearizable; `now_ms` is
    /// the leader's "now" for expiry (never before its replicated now).
    Index {
        /// The read index.
        index: LogIndex,
        /// The time reads use to decide expiry.
        now_ms: u64,
    },
    /// The receiver is not the leader.
    NotLeader {
        /// The leader it knows of.
        leader: Option<NodeId>,
    },
    /// The request failed on the leader.
    Failed(RequestError),
}

/// One piece of a snapshot's payload streamed to a follower. Chunks of one
/// stream are sent in order, one at a time; the last one is empty, carries
/// `done` and the payload's CRC32C, and seals the received file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotChunk {
    /// The snapshot this chunk belongs to.
    pub meta: SnapshotMeta,
    /// Byte offset of `data` in the payload.
    pub offset: u64,
    /// The payload bytes.
    pub data: Bytes,
    /// The stream ends here: `offset` is the payload's length.
    pub done: bool,
    /// With `done`: the payload's CRC32C as the leader's file records it.
    pub payload_crc: u32,
}

/// Why an RPC failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The request never reached the peer (connection refused, unknown peer): it
    /// certainly had no effect.
    #[error("request to node {peer} not sent: {reason}")]
    NotSent {
        /// Target.
        peer: NodeId,
        /// What happened.
        reason: String,
    },
    /// The request may have reached the peer; its effect is unknown.
    #[error("request to node {peer} failed after sending: {reason}")]
    Unknown {
        /// Target.
        peer: NodeId,
        /// What happened.
        reason: String,
    },
}

/// Encodes a value for an RPC body.
pub fn encode<T: Serialize>(value: &T) -> Bytes {
    // Serialising owned in-memory values to a Vec cannot fail with postcard.
    Bytes::from(postcard::to_allocvec(value).expect("postcard serialises in-memory values"))
}

/// Decodes an RPC body.
///
/// # Errors
/// When the bytes are not a `T`.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(bytes)
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// The outbound side of peer RPC: per-peer sender tasks and request/response calls.
#[derive(Clone)]
pub struct Transport {
    me: NodeId,
    cluster_id: String,
    client: HttpClient,
    peers: HashMap<NodeId, PeerLink>,
}

#[derive(Clone)]
struct PeerLink {
    http_addr: SocketAddr,
    queue: mpsc::Sender<Envelope>,
}

impl Transport {
    /// Starts one sender task per peer (must run inside a tokio runtime).
    pub fn start(me: NodeId, cluster_id: String, peers: &[(NodeId, SocketAddr)]) -> Transport {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_millis(500)));
        let client: HttpClient = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        let mut links = HashMap::new();
        for &(id, http_addr) in peers {
            let (tx, rx) = mpsc::channel(PEER_QUEUE_MESSAGES);
            links.insert(
                id,
                PeerLink {
                    http_addr,
                    queue: tx,
                },
            );
            let sender = PeerSender {
                me,
                peer: id,
                cluster_id: cluster_id.clone(),
                uri: format!("http://{http_addr}{MSG_PATH}"),
                client: client.clone(),
            };
            tokio::spawn(
                sender
                    .run(rx)
                    .instrument(tracing::debug_span!("rpc", to = id.0)),
            );
        }
        Transport {
            me,
            cluster_id,
            client,
            peers: links,
        }
    }

    /// Queues a Raft message for its recipient; drops it if that peer's queue is
    /// full or the peer is unknown (Raft tolerates loss).
    pub fn send(&self, envelope: Envelope) {
        match self.peers.get(&envelope.to) {
            Some(link) => {
                if link.queue.try_send(envelope).is_err() {
                    debug!("peer queue full, message dropped");
                }
            }
            None => warn!(to = envelope.to.0, "message for unknown peer dropped"),
        }
    }

    /// Sends client writes to the leader `peer`, to be proposed in this order,
    /// and waits for its reply.
    ///
    /// # Errors
    /// [`RpcError::NotSent`] when it certainly had no effect, else [`RpcError::Unknown`].
    pub async fn forward(
        &self,
        peer: NodeId,
        ops: &[kv::Op],
        timeout: Duration,
    ) -> Result<ForwardReply, RpcError> {
        let body = self.call(peer, FORWARD_PATH, encode(&ops), timeout).await?;
        decode(&body).map_err(|e| RpcError::Unknown {
            peer,
            reason: format!("bad forward reply: {e}"),
        })
    }

    /// Asks the leader `peer` for a read index.
    ///
    /// # Errors
    /// When the call fails either way (a read can simply be retried).
    pub async fn read_index(
        &self,
        peer: NodeId,
        timeout: Duration,
    ) -> Result<ReadIndexReply, RpcError> {
        let body = self
            .call(peer, READ_INDEX_PATH, Bytes::new(), timeout)
            .await?;
        decode(&body).map_err(|e| RpcError::Unknown {
            peer,
            reason: format!("bad read-index reply: {e}"),
        })
    }

    /// Sends one snapshot chunk to `peer` and waits until it is written there.
    ///
    /// # Errors
    /// When the call fails or the peer refuses the chunk (the stream is then
    /// abandoned; the leader sends the snapshot again later).
    pub async fn send_snapshot_chunk(
        &self,
        peer: NodeId,
        chunk: &SnapshotChunk,
        timeout: Duration,
    ) -> Result<(), RpcError> {
        self.call(peer, SNAPSHOT_PATH, encode(chunk), timeout)
            .await
            .map(|_| ())
    }

    async fn call(
        &self,
        peer: NodeId,
        path: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, RpcError> {
        let link = self.peers.get(&peer).ok_or_else(|| RpcError::NotSent {
            peer,
            reason: "not a configured peer".to_string(),
        })?;
        let request = build_request(
            &format!("http://{}{path}", link.http_addr),
            &self.cluster_id,
            self.me,
            body,
        )
        .map_err(|e| RpcError::NotSent {
            peer,
            reason: e.to_string(),
        })?;
        let response = match tokio::time::timeout(timeout, self.client.request(request)).await {
            Err(_) => {
                return Err(RpcError::Unknown {
                    peer,
                    reason: "timed out".to_string(),
                })
            }
            Ok(Err(e)) if e.is_connect() => {
                return Err(RpcError::NotSent {
                    peer,
                    reason: e.to_string(),
                })
            }
            Ok(Err(e)) => {
                return Err(RpcError::Unknown {
                    peer,
                    reason: e.to_string(),
                })
            }
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        let bytes = match tokio::time::timeout(timeout, response.into_body().collect()).await {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(e)) => {
                return Err(RpcError::Unknown {
                    peer,
                    reason: e.to_string(),
                })
            }
            Err(_) => {
                return Err(RpcError::Unknown {
                    peer,
                    reason: "timed out reading reply".to_string(),
                })
            }
        };
        if !status.is_success() {
            // The peer refused the request before acting on it (wrong cluster, bad body).
            return Err(RpcError::NotSent {
                peer,
                reason: format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes)),
            });
        }
        Ok(bytes)
    }
}

fn build_request(
    uri: &str,
    cluster_id: &str,
    me: NodeId,
    body: Bytes,
) -> Result<http::Request<Full<Bytes>>, http::Error> {
    http::Request::post(uri)
        .header(CLUSTER_HEADER, cluster_id)
        .header(FROM_HEADER, me.0.to_string())
        .header(http::header::CONTENT_TYPE, "application/octet-stream")
        .body(Full::new(body))
}

struct PeerSender {
    me: NodeId,
    peer: NodeId,
    cluster_id: String,
    uri: String,
    client: HttpClient,
}

impl PeerSender {
    async fn run(self, mut queue: mpsc::Receiver<Envelope>) {
        let mut failures: u32 = 0;
        while let Some(first) = queue.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH_MESSAGES {
                match queue.try_recv() {
                    Ok(envelope) => batch.push(envelope),
                    Err(_) => break,
                }
            }
            match self.post(encode(&batch)).await {
                Ok(()) => {
                    if failures > 0 {
                        debug!(failures, "peer reachable again");
                    }
                    failures = 0;
                }
                Err(reason) => {
                    failures = failures.saturating_add(1);
                    if failures == 1 || failures % 100 == 0 {
                        debug!(failures, %reason, "sending to peer failed; messages dropped");
                    }
                    // Do not spin on a dead peer; what queues meanwhile is mostly
                    // heartbeats that the next ones supersede.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    async fn post(&self, body: Bytes) -> Result<(), String> {
        let request =
            build_request(&self.uri, &self.cluster_id, self.me, body).map_err(|e| e.to_string())?;
        match tokio::time::timeout(MSG_TIMEOUT, self.client.request(request)).await {
            Err(_) => Err("timed out".to_string()),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(response)) => {
                let status = response.status();
                // Drain the body so the connection returns to the pool.
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .map(|c| c.to_bytes())
                    .unwrap_or_default();
                if status.is_success() {
                    Ok(())
                } else {
                    let _ = self.peer;
                    Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)))
                }
            }
        }
    }
}
