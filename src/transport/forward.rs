//! Forwarded writes from all of a follower's connections, on one stream to
//! the leader.
//!
//! A follower's connection hands its batch of writes (one connection's
//! pipelined writes, in order) to the forwarder of the leader's link
//! ([`Forwarder::submit`]). The forwarder task keeps one long-lived
//! `POST /raft/forward-stream` open to that peer, full duplex: the request
//! body is a stream of frames (a little-endian `u32` length, then
//! `(id, batch)` pairs back to back, each batch a postcard-encoded
//! `Vec<kv::Op>`), and the response body is a stream of frames of
//! `(id, ForwardReply)` pairs. Each frame takes everything queued when it is
//! built, up to [`MAX_JOBS_PER_FRAME`] batches or [`FRAME_BUDGET_BYTES`], so
//! frames grow with the load (as group commit does for fsyncs). The leader
//! proposes each frame's batches in one request to its driver, as they come,
//! and answers each batch by its id, so replies need no order. Batches from
//! different connections have no order among them; one batch is never split.
//!
//! Against a request per call (`/raft/forward-batches`, still served), the
//! stream saves a request's headers, a pooled connection's checkout and a
//! response per call on both sides, and no batch waits for a call slot.
//!
//! The queue is bounded ([`QUEUE_BATCHES`]); a writer that finds it full
//! waits, within its own attempt timeout, and then gets
//! [`RpcError::NotSent`]. When a stream fails, the batches on it get the
//! error the one-request-per-batch path gave: `NotSent` when they certainly
//! had no effect (no connection was made, or the peer refused the stream
//! before reading it: another cluster, not a peer, a route it does not
//! serve), else `Unknown`, which the node reports as `ERR outcome unknown`
//! and never retries. Batches not yet handed to the stream wait for the next
//! one. A batch whose writer stopped waiting (its attempt timed out, which it
//! already reported as unknown) is dropped unsent when the forwarder gets to
//! it; one that was sent is forgotten when its reply comes.
//!
//! A stream with nothing in flight ends after [`IDLE_CLOSE`] without a
//! batch (a follower forwards to one leader; the others' streams close). A
//! stream whose oldest frame waits [`STUCK_AFTER`] for its replies is given
//! up (the leader answers every batch within its request timeout). At most
//! [`FRAMES_IN_FLIGHT`] frames wait for replies at a time.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::debug;

use super::{
    build_request, seal_frame, stream_outcome, take_frame, ForwardReply, FrameBody, RpcError,
    StreamClient, FRAME_BUDGET_BYTES, FRAME_HEADER_BYTES, STREAM_FRAMES_QUEUED,
};
use crate::metrics::{PeerMetrics, PeerRpc};
use crate::raft::NodeId;

/// Batches queued for one leader before writers wait for room.
const QUEUE_BATCHES: usize = 4096;
/// Most batches sent in one frame.
const MAX_JOBS_PER_FRAME: usize = 1024;
/// Frames with batches unanswered at a time. What queues meanwhile goes in
/// the next frame, so frames grow with the load: each frame is one request
/// to the leader's driver, and one frame per batch costs the leader more
/// than the stream saves.
const FRAMES_IN_FLIGHT: usize = 4;
/// A stream with nothing in flight ends after this long without a batch.
const IDLE_CLOSE: Duration = Duration::from_secs(5);
/// A stream whose oldest frame waits this long for its replies is given up:
/// above any request timeout a leader waits out.
const STUCK_AFTER: Duration = Duration::from_secs(60);
/// Reply frames a follower accepts: a reply is at most a batch's outputs,
/// and a batch's outputs are bounded by the client's output limits, not here;
/// this only stops a corrupt length from reserving gigabytes.
const MAX_REPLY_FRAME_BYTES: usize = 1 << 30;

/// One connection's batch, waiting for its place in a frame.
struct Job {
    /// The batch: a postcard-encoded `Vec<kv::Op>`.
    body: Bytes,
    reply: oneshot::Sender<Result<ForwardReply, RpcError>>,
}

/// The sending side of one peer's forwarder task.
#[derive(Clone)]
pub(super) struct Forwarder {
    peer: NodeId,
    queue: mpsc::Sender<Job>,
}

/// What a forwarder task needs to open streams.
pub(super) struct ForwarderTask {
    pub(super) peer: NodeId,
    pub(super) me: NodeId,
    pub(super) cluster_id: String,
    pub(super) uri: String,
    pub(super) client: StreamClient,
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
        let job = Job { body, reply };
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
            // Dropped by a forwarder that ended without answering (the
            // runtime is stopping): it may have been sent.
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

/// A batch on the stream, waiting for its reply.
struct Sent {
    frame: u64,
    at: Instant,
    reply: oneshot::Sender<Result<ForwardReply, RpcError>>,
}

/// What a stream carries unanswered: its batches by id, and the frames they
/// went in, oldest first, each with how many of its batches wait.
#[derive(Default)]
struct InFlight {
    batches: HashMap<u64, Sent>,
    frames: BTreeMap<u64, (Instant, usize)>,
    next_frame: u64,
}

impl InFlight {
    /// A frame of `jobs` handed to the stream.
    fn sent(&mut self, jobs: Vec<(u64, Job)>) {
        let frame = self.next_frame;
        self.next_frame += 1;
        let at = Instant::now();
        self.frames.insert(frame, (at, jobs.len()));
        for (id, job) in jobs {
            let reply = job.reply;
            self.batches.insert(id, Sent { frame, at, reply });
        }
    }

    /// The batch `id`, answered; `None` if none waits under that id.
    fn answered(&mut self, id: u64) -> Option<Sent> {
        let sent = self.batches.remove(&id)?;
        if let Some((_, waiting)) = self.frames.get_mut(&sent.frame) {
            *waiting -= 1;
            if *waiting == 0 {
                self.frames.remove(&sent.frame);
            }
        }
        Some(sent)
    }

    fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// When the oldest frame with a batch unanswered was sent.
    fn oldest(&self) -> Option<Instant> {
        self.frames.values().next().map(|&(at, _)| at)
    }
}

/// A frame built and not yet handed to the stream, with its batches.
struct Outgoing {
    frame: Bytes,
    jobs: Vec<(u64, Job)>,
}

/// How a stream ended.
enum Ended {
    /// Every [`Forwarder`] is gone.
    QueueClosed,
    /// Idle, closed cleanly; the next batch opens a new one.
    Idle,
    /// Failed or ended by the peer; the batches it carried were answered.
    Failed,
}

impl ForwarderTask {
    /// Opens a stream when a batch comes, until every [`Forwarder`] is dropped.
    async fn run(self, mut jobs: mpsc::Receiver<Job>) {
        // Batches built into a frame that a failed stream never took.
        let mut carried: Vec<Job> = Vec::new();
        loop {
            if carried.is_empty() {
                match jobs.recv().await {
                    Some(job) => carried.push(job),
                    None => return,
                }
            }
            match self.stream(&mut carried, &mut jobs).await {
                Ended::QueueClosed => return,
                Ended::Idle => {}
                // Its batches count in `dkv_peer_rpc_failures_total`. Do not
                // spin on a peer that refuses us.
                Ended::Failed => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// One stream: batches out as frames, replies back by id, until it
    /// fails, idles or the queue closes. `carried` go first; what a frame
    /// built but never handed over is left in it.
    async fn stream(&self, carried: &mut Vec<Job>, jobs: &mut mpsc::Receiver<Job>) -> Ended {
        let peer = self.peer;
        let (frames, body) = mpsc::channel(STREAM_FRAMES_QUEUED);
        let request =
            match build_request(&self.uri, &self.cluster_id, self.me, FrameBody::new(body)) {
                Ok(request) => request,
                Err(e) => {
                    let e = RpcError::NotSent {
                        peer,
                        reason: e.to_string(),
                    };
                    for job in carried.drain(..) {
                        let _ = job.reply.send(Err(e.clone()));
                    }
                    return Ended::Failed;
                }
            };
        let response = self.client.request(request);
        tokio::pin!(response);
        let mut replies: Option<hyper::body::Incoming> = None;
        let mut buffer = BytesMut::new();
        let mut pending = InFlight::default();
        let mut next_id: u64 = 0;
        let mut outgoing: Option<Outgoing> = None;
        let mut waiting: Vec<Job> = std::mem::take(carried);
        let mut closing = false;
        let mut last_batch = Instant::now();
        // Fails every batch handed to the stream with `error`; a frame built
        // and not handed over goes back to `carried` for the next stream.
        let metrics = &self.metrics;
        let fail = |pending: InFlight,
                    outgoing: Option<Outgoing>,
                    carried: &mut Vec<Job>,
                    error: RpcError| {
            let mut failed = 0;
            for (_, sent) in pending.batches {
                failed += 1;
                metrics.rpc_done(PeerRpc::Forward, sent.at.elapsed(), false);
                let _ = sent.reply.send(Err(error.clone()));
            }
            if let Some(outgoing) = outgoing {
                carried.extend(outgoing.jobs.into_iter().map(|(_, job)| job));
            }
            if failed > 0 {
                debug!(peer = peer.0, failed, error = %error, "forward stream failed");
            }
        };
        loop {
            let room = pending.frames.len() < FRAMES_IN_FLIGHT;
            if outgoing.is_none() && room {
                waiting
                    .extend(std::iter::from_fn(|| jobs.try_recv().ok()).take(MAX_JOBS_PER_FRAME));
                while outgoing.is_none() && !waiting.is_empty() {
                    outgoing = build_frame(&mut waiting, &mut next_id);
                    last_batch = Instant::now();
                }
            }
            if closing && outgoing.is_none() && waiting.is_empty() && pending.is_empty() {
                drop(frames);
                // The body ends; the peer's reply ends with it.
                if let Some(mut body) = replies.take() {
                    let _ = tokio::time::timeout(IDLE_CLOSE, async {
                        while let Some(Ok(_)) = body.frame().await {}
                    })
                    .await;
                }
                return Ended::QueueClosed;
            }
            let idle_at = last_batch + IDLE_CLOSE;
            let stuck_at = pending.oldest().map_or(idle_at, |at| at + STUCK_AFTER);
            tokio::select! {
                biased;
                head = &mut response, if replies.is_none() => match head {
                    Ok(head) if head.status().is_success() => {
                        replies = Some(head.into_body());
                    }
                    Ok(head) => {
                        // Refused before the peer read a frame: nothing it
                        // carried can have had an effect.
                        let reason = stream_outcome(Ok(head)).await;
                        let e = RpcError::NotSent { peer, reason };
                        fail(pending, outgoing, carried, e.clone());
                        for job in carried.drain(..).chain(waiting.drain(..)) {
                            let _ = job.reply.send(Err(e.clone()));
                        }
                        return Ended::Failed;
                    }
                    Err(e) => {
                        let e = if e.is_connect() {
                            RpcError::NotSent { peer, reason: e.to_string() }
                        } else {
                            RpcError::Unknown { peer, reason: e.to_string() }
                        };
                        fail(pending, outgoing, carried, e);
                        carried.append(&mut waiting);
                        return Ended::Failed;
                    }
                },
                data = next_data(&mut replies), if replies.is_some() => {
                    let error = match data {
                        Some(Ok(data)) => {
                            buffer.extend_from_slice(&data);
                            match self.answer(&mut buffer, &mut pending) {
                                Ok(()) => continue,
                                Err(reason) => reason,
                            }
                        }
                        Some(Err(reason)) => reason,
                        None if closing && pending.is_empty() => return Ended::QueueClosed,
                        None => "the leader ended the stream".to_string(),
                    };
                    fail(pending, outgoing, carried, RpcError::Unknown { peer, reason: error });
                    carried.append(&mut waiting);
                    return Ended::Failed;
                }
                room = frames.reserve(), if outgoing.is_some() => match (room, outgoing.take()) {
                    (Ok(permit), Some(out)) => {
                        permit.send(out.frame);
                        pending.sent(out.jobs);
                    }
                    (_, out) => {
                        let reason = "the stream's body was dropped".to_string();
                        fail(pending, out, carried, RpcError::Unknown { peer, reason });
                        carried.append(&mut waiting);
                        return Ended::Failed;
                    }
                },
                job = jobs.recv(), if outgoing.is_none() && !closing && room => match job {
                    Some(job) => waiting.push(job),
                    None => closing = true,
                },
                () = tokio::time::sleep_until(idle_at), if outgoing.is_none() && waiting.is_empty() && pending.is_empty() && !closing => {
                    // The body ends as `frames` drops.
                    return Ended::Idle;
                }
                () = tokio::time::sleep_until(stuck_at), if !pending.is_empty() => {
                    let reason = format!("no reply on the forward stream for {STUCK_AFTER:?}");
                    fail(pending, outgoing, carried, RpcError::Unknown { peer, reason });
                    carried.append(&mut waiting);
                    return Ended::Failed;
                }
            }
        }
    }

    /// Answers the batches whose replies are whole in `buffer`.
    fn answer(&self, buffer: &mut BytesMut, pending: &mut InFlight) -> Result<(), String> {
        loop {
            let payload = match take_frame(buffer, MAX_REPLY_FRAME_BYTES) {
                Ok(Some(payload)) => payload,
                Ok(None) => return Ok(()),
                Err(e) => return Err(format!("bad forward reply: {e}")),
            };
            let replies = super::decode_back_to_back::<(u64, ForwardReply)>(&payload)
                .map_err(|e| format!("bad forward reply: {e}"))?;
            for (id, reply) in replies {
                // An id not waited for is a reply to a batch whose writer gave
                // up, or the leader's mistake; either way nobody is waiting.
                if let Some(sent) = pending.answered(id) {
                    self.metrics
                        .rpc_done(PeerRpc::Forward, sent.at.elapsed(), true);
                    let _ = sent.reply.send(Ok(reply));
                }
            }
        }
    }
}

/// The next piece of the reply body; `None` when it ended.
async fn next_data(replies: &mut Option<hyper::body::Incoming>) -> Option<Result<Bytes, String>> {
    let body = replies.as_mut()?;
    loop {
        match body.frame().await? {
            Ok(frame) => match frame.into_data() {
                Ok(data) => return Some(Ok(data)),
                Err(_) => continue, // trailers carry nothing for us
            },
            Err(e) => return Some(Err(e.to_string())),
        }
    }
}

/// A frame of the batches in `waiting` whose writers still wait, up to
/// [`MAX_JOBS_PER_FRAME`] of them or [`FRAME_BUDGET_BYTES`] (one batch always
/// fits); the rest stay in `waiting`. `None` when no writer waits.
fn build_frame(waiting: &mut Vec<Job>, next_id: &mut u64) -> Option<Outgoing> {
    let mut jobs = Vec::new();
    let (mut taken, mut size) = (0, 0);
    for job in waiting.iter() {
        if taken > 0 && (taken >= MAX_JOBS_PER_FRAME || size + job.body.len() > FRAME_BUDGET_BYTES)
        {
            break;
        }
        taken += 1;
        size += job.body.len();
    }
    // Each batch's id is a varint of at most 10 bytes.
    let mut bytes = Vec::with_capacity(FRAME_HEADER_BYTES + size + 10 * taken);
    bytes.resize(FRAME_HEADER_BYTES, 0);
    for job in waiting.drain(..taken) {
        // A writer that gave up (and reported the outcome unknown) is not
        // sent at all.
        if job.reply.is_closed() {
            continue;
        }
        let id = *next_id;
        *next_id += 1;
        bytes = crate::encode::append(&id, bytes);
        bytes.extend_from_slice(&job.body);
        jobs.push((id, job));
    }
    if jobs.is_empty() {
        return None;
    }
    Some(Outgoing {
        frame: seal_frame(bytes),
        jobs,
    })
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use http_body_util::Full;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

    use super::*;
    use crate::kv;
    use crate::transport::{decode_forward_frame, encode, forward_reply_frame, PeerConnector};

    fn set(key: &str) -> kv::Op {
        kv::Op::Set {
            key: Bytes::from(key.to_string()),
            value: Bytes::from_static(b"v"),
        }
    }

    fn job(ops: &[kv::Op]) -> (Job, oneshot::Receiver<Result<ForwardReply, RpcError>>) {
        let (reply, answer) = oneshot::channel();
        (
            Job {
                body: encode(&ops),
                reply,
            },
            answer,
        )
    }

    /// A frame is the waiting batches' own encodings behind their ids, in
    /// order; a writer that gave up is left out, and the budget and the
    /// batch limit leave the rest for the next frame.
    #[test]
    fn a_frame_carries_each_waiting_batch_behind_its_id() {
        let batches: Vec<Vec<kv::Op>> = vec![
            vec![set("a")],
            Vec::new(),
            vec![set("b"), set("c")],
            vec![set("gone")],
            vec![set("d")],
        ];
        let mut waiting = Vec::new();
        let mut answers = Vec::new();
        for batch in &batches {
            let (job, answer) = job(batch);
            waiting.push(job);
            answers.push(answer);
        }
        drop(answers.remove(3));
        let mut next_id = 7;
        let out = build_frame(&mut waiting, &mut next_id).expect("a frame");
        assert!(waiting.is_empty());
        assert_eq!(next_id, 11, "ids go to the batches sent, in order");
        let mut frame = BytesMut::from(&out.frame[..]);
        let payload = take_frame(&mut frame, usize::MAX)
            .expect("a whole frame")
            .expect("its payload");
        assert!(frame.is_empty(), "the length prefix covers the payload");
        let sent = decode_forward_frame(&payload).expect("decodes");
        let expected: Vec<(u64, Vec<kv::Op>)> = vec![
            (7, batches[0].clone()),
            (8, batches[1].clone()),
            (9, batches[2].clone()),
            (10, batches[4].clone()),
        ];
        assert_eq!(sent, expected);
        assert_eq!(
            out.jobs.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            vec![7, 8, 9, 10]
        );

        // Over the budget: the first batch always goes, the next waits.
        let big = vec![kv::Op::Set {
            key: Bytes::from_static(b"k"),
            value: Bytes::from(vec![b'x'; FRAME_BUDGET_BYTES / 2 + 1]),
        }];
        let (first, _a) = job(&big);
        let (second, _b) = job(&big);
        let mut waiting = vec![first, second];
        let out = build_frame(&mut waiting, &mut next_id).expect("a frame");
        assert_eq!(out.jobs.len(), 1);
        assert_eq!(waiting.len(), 1, "the batch over the budget waits");

        // The batch limit.
        let mut kept = Vec::new();
        let mut waiting = Vec::new();
        for _ in 0..MAX_JOBS_PER_FRAME + 5 {
            let (job, answer) = job(&[set("k")]);
            waiting.push(job);
            kept.push(answer);
        }
        let out = build_frame(&mut waiting, &mut next_id).expect("a frame");
        assert_eq!(out.jobs.len(), MAX_JOBS_PER_FRAME);
        assert_eq!(waiting.len(), 5);

        // Nobody waits: no frame.
        let (gone, answer) = job(&[set("k")]);
        drop(answer);
        assert!(build_frame(&mut vec![gone], &mut next_id).is_none());
    }

    /// How the test's leader treats a forward stream.
    #[derive(Clone, Copy)]
    enum Leader {
        /// Answers each frame after a pause, each batch with its keys.
        Answers,
        /// Refuses the stream before reading it.
        Refuses,
        /// Reads a frame, then ends the reply body without answering.
        Drops,
    }

    /// A peer serving `/raft/forward-stream` as `leader` says; counts frames
    /// received and the most that waited for their replies at once.
    async fn peer(
        leader: Leader,
        frames: Arc<AtomicUsize>,
        most_waiting: Arc<AtomicUsize>,
    ) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (frames, most_waiting) = (frames.clone(), most_waiting.clone());
                let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
                    let (frames, most_waiting) = (frames.clone(), most_waiting.clone());
                    async move {
                        let (tx, rx) = mpsc::channel(64);
                        if let Leader::Refuses = leader {
                            let mut refusal = hyper::Response::new(http_body_util::Either::Left(
                                Full::new(Bytes::from_static(b"wrong cluster\n")),
                            ));
                            *refusal.status_mut() = http::StatusCode::FORBIDDEN;
                            return Ok::<_, Infallible>(refusal);
                        }
                        let mut body: hyper::body::Incoming = request.into_body();
                        tokio::spawn(async move {
                            let waiting = Arc::new(AtomicUsize::new(0));
                            let mut buffer = BytesMut::new();
                            while let Some(Ok(frame)) = body.frame().await {
                                let Ok(data) = frame.into_data() else {
                                    continue;
                                };
                                buffer.extend_from_slice(&data);
                                while let Ok(Some(payload)) = take_frame(&mut buffer, usize::MAX) {
                                    frames.fetch_add(1, Ordering::SeqCst);
                                    if let Leader::Drops = leader {
                                        return;
                                    }
                                    let now = waiting.fetch_add(1, Ordering::SeqCst) + 1;
                                    most_waiting.fetch_max(now, Ordering::SeqCst);
                                    let batches = decode_forward_frame(&payload).expect("a frame");
                                    let (tx, waiting) = (tx.clone(), waiting.clone());
                                    tokio::spawn(async move {
                                        tokio::time::sleep(Duration::from_millis(20)).await;
                                        // Last first: replies go by id, not order.
                                        let replies = batches.into_iter().rev().map(|(id, ops)| {
                                            let keys = ops.iter().map(|op| match op {
                                                kv::Op::Set { key, .. } => {
                                                    Ok(kv::Output::Bulk(Some(key.clone())))
                                                }
                                                _ => Ok(kv::Output::Bulk(None)),
                                            });
                                            (id, ForwardReply::Done(keys.collect()))
                                        });
                                        waiting.fetch_sub(1, Ordering::SeqCst);
                                        let _ = tx.send(forward_reply_frame(replies)).await;
                                    });
                                }
                            }
                        });
                        Ok::<_, Infallible>(hyper::Response::new(http_body_util::Either::Right(
                            FrameBody::new(rx),
                        )))
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        addr
    }

    fn forwarder(addr: std::net::SocketAddr) -> Forwarder {
        let client: StreamClient = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .build(PeerConnector::new(None));
        Forwarder::start(ForwarderTask {
            peer: NodeId(2),
            me: NodeId(1),
            cluster_id: "c".to_string(),
            uri: format!("http://{addr}{}", crate::transport::FORWARD_STREAM_PATH),
            client,
            metrics: PeerMetrics::new(2),
        })
    }

    /// Many writers at once on one stream: each gets its own batch's reply
    /// though the leader answers out of order, batches share frames, and no
    /// more than [`FRAMES_IN_FLIGHT`] frames wait for replies at a time.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_writer_gets_its_own_reply_with_frames_in_flight_bounded() {
        let (frames, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let addr = peer(Leader::Answers, frames.clone(), most.clone()).await;
        let forwarder = forwarder(addr);
        let writers: Vec<_> = (0..300)
            .map(|i| {
                let forwarder = forwarder.clone();
                tokio::spawn(async move {
                    let ops = vec![set(&format!("k{i}")), set(&format!("j{i}"))];
                    let reply = forwarder
                        .submit(encode(&ops), Duration::from_secs(20))
                        .await;
                    (i, reply)
                })
            })
            .collect();
        for writer in writers {
            let (i, reply) = writer.await.expect("writer");
            let expected = ForwardReply::Done(vec![
                Ok(kv::Output::Bulk(Some(Bytes::from(format!("k{i}"))))),
                Ok(kv::Output::Bulk(Some(Bytes::from(format!("j{i}"))))),
            ]);
            assert_eq!(reply.expect("answered"), expected, "writer {i}");
        }
        let (frames, most) = (frames.load(Ordering::SeqCst), most.load(Ordering::SeqCst));
        assert!(frames < 300, "300 batches in {frames} frames: none shared");
        assert!(
            most <= FRAMES_IN_FLIGHT,
            "{most} frames waited at once, over {FRAMES_IN_FLIGHT}"
        );
    }

    /// A stream the leader refuses before reading had no effect: `NotSent`,
    /// which the node may retry. One the leader ends after reading a batch
    /// may have: `Unknown`.
    #[tokio::test]
    async fn a_refused_stream_is_not_sent_and_a_broken_one_unknown() {
        let count = || Arc::new(AtomicUsize::new(0));
        let refusing = forwarder(peer(Leader::Refuses, count(), count()).await);
        let reply = refusing
            .submit(encode(&vec![set("a")]), Duration::from_secs(10))
            .await;
        assert!(
            matches!(reply, Err(RpcError::NotSent { .. })),
            "refused: {reply:?}"
        );
        let frames = count();
        let dropping = forwarder(peer(Leader::Drops, frames.clone(), count()).await);
        let reply = dropping
            .submit(encode(&vec![set("a")]), Duration::from_secs(10))
            .await;
        assert!(
            matches!(reply, Err(RpcError::Unknown { ref reason, .. }) if !reason.contains("timed out")),
            "ended after a frame was read: {reply:?}"
        );
        assert_eq!(frames.load(Ordering::SeqCst), 1);
    }
}
