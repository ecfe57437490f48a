//! Forwarded writes from all of a follower's connections, sent to the leader
//! together.
//!
//! A follower's connection hands its batch of writes (one connection's
//! pipelined writes, in order) to the forwarder of the leader's link
//! ([`Forwarder::submit`]). The forwarder task takes everything queued, up to
//! [`MAX_JOBS_PER_CALL`] batches or [`FRAME_BUDGET_BYTES`], and sends it as one
//! `POST /raft/forward-batches` whose body is the batches' encodings back to
//! back; the leader proposes them in one request to its driver and answers one
//! [`ForwardReply`] per batch, in the order sent, so each reply goes back to its
//! batch by position. At most [`CALLS_IN_FLIGHT`] calls are out at a time, on
//! the pooled keep-alive connections to that peer; what queues meanwhile waits
//! for the next call, so the batches grow with the load (as group commit does
//! for fsyncs). Batches from different connections have no order among them;
//! one batch is never split.
//!
//! The queue is bounded ([`QUEUE_BATCHES`]); a writer that finds it full
//! waits, within its own attempt timeout, and then gets
//! [`RpcError::NotSent`]. A call's failure reaches every batch in it with the
//! error the one-request-per-batch path gave: `NotSent` when the request
//! certainly had no effect (connection refused, refused before reading), else
//! `Unknown`, which the node reports as `ERR outcome unknown` and never
//! retries. A batch whose writer stopped waiting (its attempt timed out, which
//! it already reported as unknown) is dropped unsent when the forwarder gets
//! to it.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;

use super::{decode, post, ForwardReply, HttpClient, RpcError, FRAME_BUDGET_BYTES};
use crate::metrics::{PeerMetrics, PeerRpc};
use crate::raft::NodeId;

/// Batches queued for one leader before writers wait for room.
const QUEUE_BATCHES: usize = 4096;
/// Most batches sent in one call.
const MAX_JOBS_PER_CALL: usize = 1024;
/// Calls to one peer out at a time.
const CALLS_IN_FLIGHT: usize = 4;

/// One connection's batch, waiting for its place in a call.
struct Job {
    /// The batch: a postcard-encoded `Vec<kv::Op>`.
    body: Bytes,
    /// When its writer stops waiting.
    deadline: Instant,
    reply: oneshot::Sender<Result<ForwardReply, RpcError>>,
}

/// The sending side of one peer's forwarder task.
#[derive(Clone)]
pub(super) struct Forwarder {
    peer: NodeId,
    queue: mpsc::Sender<Job>,
}

/// What a forwarder task needs to make calls.
pub(super) struct ForwarderTask {
    pub(super) peer: NodeId,
    pub(super) me: NodeId,
    pub(super) cluster_id: String,
    pub(super) uri: String,
    pub(super) client: HttpClient,
    pub(super) metrics: PeerMetrics,
}

impl Forwarder {
    /// Starts the forwarder task for `task.peer`.
    pub(super) fn start(task: ForwarderTask) -> Forwarder {
        let (queue, jobs) = mpsc::channel(QUEUE_BATCHES);
        let peer = task.peer;
        tokio::spawn(task.run(jobs));
        Forwarder { peer, queue }
    }

    /// Queues one encoded batch and waits, at most `timeout`, for the
    /// leader's answer.
    pub(super) async fn submit(
        &self,
        body: Bytes,
        timeout: Duration,
    ) -> Result<ForwardReply, RpcError> {
        let peer = self.peer;
        let deadline = Instant::now() + timeout;
        let (reply, answer) = oneshot::channel();
        let job = Job {
            body,
            deadline,
            reply,
        };
        match tokio::time::timeout_at(deadline, self.queue.send(job)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                return Err(RpcError::NotSent {
                    peer,
                    reason: "the forwarder stopped".to_string(),
                })
            }
            Err(_) => {
                return Err(RpcError::NotSent {
                    peer,
                    reason: "the forward queue stayed full".to_string(),
                })
            }
        }
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(result)) => result,
            // Dropped by a call that ended without answering (the runtime is
            // stopping): it may have been sent.
            Ok(Err(_)) => Err(RpcError::Unknown {
                peer,
                reason: "the forwarder dropped the write".to_string(),
            }),
            Err(_) => Err(RpcError::Unknown {
                peer,
                reason: "timed out".to_string(),
            }),
        }
    }
}

impl ForwarderTask {
    /// Takes what is queued into calls, [`CALLS_IN_FLIGHT`] at a time, until
    /// every [`Forwarder`] is dropped.
    async fn run(self, mut jobs: mpsc::Receiver<Job>) {
        let room = Arc::new(Semaphore::new(CALLS_IN_FLIGHT));
        let this = Arc::new(self);
        // A job that did not fit the previous call's budget.
        let mut carried: Option<Job> = None;
        loop {
            let Ok(permit) = room.clone().acquire_owned().await else {
                return;
            };
            let first = match carried.take() {
                Some(job) => job,
                None => match jobs.recv().await {
                    Some(job) => job,
                    None => return,
                },
            };
            let mut call = Vec::new();
            let mut bytes = 0;
            let mut next = Some(first);
            while let Some(job) = next.take() {
                if !call.is_empty() && bytes + job.body.len() > FRAME_BUDGET_BYTES {
                    carried = Some(job);
                    break;
                }
                // A job whose writer gave up (and reported the outcome
                // unknown) is not sent at all.
                if !job.reply.is_closed() {
                    bytes += job.body.len();
                    call.push(job);
                }
                if call.len() >= MAX_JOBS_PER_CALL {
                    break;
                }
                next = jobs.try_recv().ok();
            }
            if call.is_empty() {
                continue;
            }
            let this = this.clone();
            tokio::spawn(async move {
                this.call(call).await;
                drop(permit);
            });
        }
    }

    /// One call: the jobs' batches in one request, each answered with its
    /// reply, or all with the call's error.
    async fn call(&self, jobs: Vec<Job>) {
        let now = Instant::now();
        let deadline = jobs.iter().map(|job| job.deadline).max().unwrap_or(now);
        let mut body = BytesMut::with_capacity(jobs.iter().map(|job| job.body.len()).sum());
        for job in &jobs {
            body.extend_from_slice(&job.body);
        }
        let started = std::time::Instant::now();
        let result = post(
            &self.client,
            &self.uri,
            &self.cluster_id,
            self.me,
            self.peer,
            body.freeze(),
            deadline.saturating_duration_since(now),
        )
        .await;
        self.metrics
            .rpc_done(PeerRpc::Forward, started.elapsed(), result.is_ok());
        let peer = self.peer;
        let replies = result.and_then(|bytes| {
            decode::<Vec<ForwardReply>>(&bytes).map_err(|e| RpcError::Unknown {
                peer,
                reason: format!("bad forward reply: {e}"),
            })
        });
        match replies {
            Ok(replies) if replies.len() == jobs.len() => {
                for (job, reply) in jobs.into_iter().zip(replies) {
                    let _ = job.reply.send(Ok(reply));
                }
            }
            Ok(replies) => {
                let reason = format!(
                    "the leader answered {} of {} forwarded batches",
                    replies.len(),
                    jobs.len()
                );
                for job in jobs {
                    let _ = job.reply.send(Err(RpcError::Unknown {
                        peer,
                        reason: reason.clone(),
                    }));
                }
            }
            Err(e) => {
                for job in jobs {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }
}
