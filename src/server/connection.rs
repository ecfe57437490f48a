//! One client connection: read, frame, execute in order, write.
//!
//! Pipelining: every complete request in the read buffer is prepared in order
//! ([`prepare`]: checks, queuing, the handler) and its reply appended to one
//! output buffer, which is written once per batch (or earlier when it grows
//! past [`FLUSH_AT_BYTES`]), never once per reply.
//!
//! Consecutive writes of a batch are carried out as one ordered group
//! ([`Backend::write_batch`]): proposed together, in request order, to one
//! leader, so they share fsyncs and round trips and still apply in order.
//! Consecutive reads share one linearizable read barrier. A read waits for the
//! writes before it (it sees them), a write for the reads before it, and any
//! other command (connection state, transactions, admin) for everything
//! before it; replies always leave in request order, each encoded with the
//! protocol in force when its request was read.
//!
//! The connection's `CLIENT LIST` entry is refreshed once per batch, before
//! its replies are written, so no request pays a lock of its own.
//!
//! A framing error is answered with Redis's text and the connection is closed;
//! a command error is answered and the connection stays open. The loop is
//! generic over the stream and the [`Backend`], so tests drive it through an
//! in-memory pipe with a fake or a real node.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::client_limits::{
    ClientAccount, ClientClass, ClientLimits, ClientSettings, LimitClose, MaxMemoryClients,
    MemorySlot, OutputLimit,
};
use super::codec::{FrameLimits, RequestParser};
use super::command::{
    lookup, prepare, publish, run_action, write_reply, Action, Backend, CommandCounters,
    CommandError, Env, Executed, Flags, Lent, Prepared, ReadFn, ReadWith, Session,
};
use super::reply::{Protocol, Reply};
use super::stats::{Request, Stats};
use crate::kv::pubsub::Frame;
use crate::kv::Op;

/// Read buffer growth step.
const READ_CHUNK_BYTES: usize = 16 * 1024;
/// An empty read buffer with more capacity than this is replaced by a small one.
const SHRINK_INPUT_ABOVE_BYTES: usize = 4 * READ_CHUNK_BYTES;
/// Most the read buffer is grown by at once for a pending large bulk.
const MAX_RESERVE_BYTES: usize = 1024 * 1024;
/// While a read fills the buffer and the socket has more, the buffer grows
/// and reading goes on up to this much input: a deep pipeline (`redis-cli
/// --pipe`) is then carried out in groups of up to [`MAX_GROUP_REQUESTS`],
/// not of what 16 KiB holds. Each write group waits for one commit, so the
/// group size sets a pipeline's throughput.
const READ_AHEAD_BYTES: usize = 256 * 1024;
/// Output written mid-batch once it is this large, to bound memory with deep
/// pipelines (and to give back-pressure to clients that do not read).
pub const FLUSH_AT_BYTES: usize = 1024 * 1024;
/// Most requests carried out as one group.
const MAX_GROUP_REQUESTS: usize = 4096;
/// A write group is carried out once its arguments reach this size.
const MAX_GROUP_BYTES: usize = 8 * 1024 * 1024;

/// One prepared request of a group, and how to answer it.
struct Member<T> {
    item: T,
    answer: Pending,
}

/// A request waiting for its reply: its command, the protocol to answer in,
/// and what the statistics need of it.
struct Pending {
    command: usize,
    protocol: Protocol,
    request: Request,
}

/// Requests prepared and waiting to be carried out together.
enum Group {
    Empty,
    Writes {
        /// Each write, and what it took of its request's arguments.
        members: Vec<Member<(Op, Option<Lent>)>>,
        bytes: usize,
    },
    Reads(Vec<Member<ReadFn>>),
    /// Pipelined blocking commands: their first attempts go to the log as
    /// one [`Op::Pops`]; the first that finds nothing blocks, and those
    /// after it run one by one after it.
    Pops(Vec<Member<super::blocking::Block>>),
    /// Pipelined (un)subscribes: proposed as one ordered batch, so their
    /// entries are consecutive in the log (no message falls between an
    /// `UNSUBSCRIBE c` and the `SUBSCRIBE c` sent right after it), then
    /// their confirmations forwarded in order.
    Subs(Vec<Member<super::pubsub::Change>>),
}

impl Group {
    fn len(&self) -> usize {
        match self {
            Group::Empty => 0,
            Group::Writes { members, .. } => members.len(),
            Group::Reads(members) => members.len(),
            Group::Pops(members) => members.len(),
            Group::Subs(members) => members.len(),
        }
    }

    fn is_full(&self) -> bool {
        self.len() >= MAX_GROUP_REQUESTS
            || matches!(self, Group::Writes { bytes, .. } if *bytes >= MAX_GROUP_BYTES)
    }
}

/// Whether a request may join a group without first waiting for the requests
/// before it: a key-space read or write outside `MULTI`. Anything else
/// (connection state, transactions, admin, unknown names) is prepared only
/// after every earlier request was carried out, as if run alone.
fn groupable(session: &Session, args: &[Bytes]) -> bool {
    if session.multi.is_some() {
        return false;
    }
    args.first()
        .and_then(|name| lookup(name))
        .is_some_and(|(_, spec)| {
            ((spec.flags.contains(Flags::WRITE) || spec.flags.contains(Flags::READONLY))
                && !spec.flags.contains(Flags::NO_QUEUE))
                // A write of its own, whatever the connection's state.
                || matches!(spec.name, "publish" | "spublish")
        })
}

/// Why the loop stopped serving a connection.
enum End {
    /// The client closed its side.
    Eof,
    /// `CLIENT KILL`, eviction or shutdown: close after what is written.
    Killed,
    /// A client limit was broken: close at once, dropping pending output.
    Limit(LimitClose),
    /// The socket failed.
    Io(io::Error),
}

impl From<io::Error> for End {
    fn from(error: io::Error) -> End {
        End::Io(error)
    }
}

/// Output is encoded into `current`; once that holds [`SEAL_AT_BYTES`] it is
/// sealed into the queue and a new buffer starts, so a large backlog is a list
/// of chunks, never one buffer re-grown (and copied) by doubling.
#[derive(Default)]
struct Outbuf {
    sealed: VecDeque<Bytes>,
    sealed_bytes: usize,
    current: BytesMut,
}

/// The size at which the output buffer is sealed into a chunk.
const SEAL_AT_BYTES: usize = 64 * 1024;

impl Outbuf {
    /// Bytes not yet written.
    fn len(&self) -> usize {
        self.sealed_bytes + self.current.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Memory held, in bytes.
    fn capacity(&self) -> usize {
        self.sealed_bytes + self.current.capacity()
    }

    /// The buffer the next reply is encoded into.
    fn encoder(&mut self) -> &mut BytesMut {
        if self.current.len() >= SEAL_AT_BYTES {
            let chunk = self.current.split().freeze();
            self.sealed_bytes += chunk.len();
            self.sealed.push_back(chunk);
        }
        &mut self.current
    }

    /// The oldest unwritten bytes.
    fn front(&self) -> &[u8] {
        self.sealed
            .front()
            .map_or(&self.current[..], |chunk| &chunk[..])
    }

    /// `written` bytes of [`Outbuf::front`] left for the socket.
    fn advance(&mut self, written: usize) {
        match self.sealed.front_mut() {
            Some(chunk) => {
                chunk.advance(written);
                self.sealed_bytes -= written;
                if chunk.is_empty() {
                    self.sealed.pop_front();
                }
            }
            None => {
                self.current.advance(written);
                if self.current.is_empty() && self.current.capacity() > 2 * FLUSH_AT_BYTES {
                    // Give back what a big reply grew the buffer to.
                    self.current = BytesMut::with_capacity(READ_CHUNK_BYTES);
                }
            }
        }
    }
}

/// What woke [`Io::wait`].
enum Woken {
    /// Bytes arrived.
    Read,
    /// Output was written or flushed, or a timer fired.
    Other,
}

/// At most one "closing client" line per this interval (a client can trigger
/// them at will).
const LIMIT_LOG_INTERVAL_MS: u64 = 1_000;

static LAST_LIMIT_LOG_MS: AtomicU64 = AtomicU64::new(0);

/// Logs a limit close, at most once per [`LIMIT_LOG_INTERVAL_MS`] process-wide.
fn log_limit_close(why: LimitClose, session: &Session, pending: usize, qbuf: usize) {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let last = LAST_LIMIT_LOG_MS.load(Ordering::Relaxed);
    if now_ms.saturating_sub(last) < LIMIT_LOG_INTERVAL_MS
        || LAST_LIMIT_LOG_MS
            .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    let id = session.id;
    match why {
        LimitClose::OutputHard | LimitClose::OutputSoft => tracing::warn!(
            id,
            omem = pending,
            soft = why == LimitClose::OutputSoft,
            "client scheduled to be closed ASAP for overcoming of output buffer limits"
        ),
        LimitClose::QueryBuffer => tracing::warn!(
            id,
            qbuf,
            "closing client that reached max query buffer length"
        ),
        LimitClose::Idle => tracing::info!(id, "closing idle client"),
        LimitClose::Evicted => tracing::warn!(id, "evicting client (maxmemory-clients)"),
    }
}

/// The connection's socket and buffers, and the output accounting.
///
/// Output a reply was encoded into and the socket has not taken yet is the
/// client's output buffer: it is checked against `client-output-buffer-limit`
/// after every reply and whenever a timer fires. While it is at or above
/// [`Io::stall_bytes`] the connection reads and runs nothing more, so memory
/// per connection is bounded even with no limit set.
struct Io<S> {
    stream: S,
    input: BytesMut,
    output: Outbuf,
    /// Written to the stream since the last flush.
    unflushed: bool,
    /// Since when the output has been at or over the soft limit.
    soft_since: Option<Instant>,
    /// The last read or write (the idle `timeout` counts from it).
    last_interaction: Instant,
    settings: ClientSettings,
    /// The [`ClientLimits::generation`] `settings` were read at.
    generation: u64,
    limits: Arc<ClientLimits>,
    slot: Option<MemorySlot>,
    shutdown: watch::Receiver<bool>,
    /// The client holds a subscription: the `pubsub` output limits apply.
    pubsub: bool,
    /// The node's statistics (network bytes), if the backend keeps them.
    stats: Option<Arc<Stats>>,
    /// Invalidations for this client (`CLIENT TRACKING`, `server/tracking.rs`).
    pushes: Option<Pushes>,
}

/// A connection's queue of tracking pushes from the node.
type Pushes = tokio::sync::mpsc::UnboundedReceiver<crate::node::tracking::Push>;

impl<S: AsyncRead + AsyncWrite + Unpin> Io<S> {
    fn output_limit(&self) -> OutputLimit {
        self.settings.output.of(if self.pubsub {
            ClientClass::Pubsub
        } else {
            ClientClass::Normal
        })
    }

    /// Pending output at which reading and running stop: never below the
    /// output limit that would close the client (so the limit can be
    /// reached), else the configured back-pressure point.
    fn stall_bytes(&self) -> usize {
        let limit = self.output_limit();
        let bound = if limit.hard_bytes > 0 {
            u64::MAX
        } else if limit.soft_bytes > 0 {
            limit.soft_bytes
        } else {
            self.settings.output_backpressure_bytes
        };
        usize::try_from(bound).unwrap_or(usize::MAX)
    }

    /// Checks the output buffer against the limits (Redis's rules: at or
    /// over hard closes; at or over soft for more than soft-seconds closes).
    fn check_output(&mut self) -> Result<(), End> {
        let limit = self.output_limit();
        let pending = self.output.len() as u64;
        if limit.hard_bytes > 0 && pending >= limit.hard_bytes {
            return Err(End::Limit(LimitClose::OutputHard));
        }
        if limit.soft_bytes > 0 && pending >= limit.soft_bytes {
            let since = *self.soft_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(limit.soft_seconds) {
                return Err(End::Limit(LimitClose::OutputSoft));
            }
        } else {
            self.soft_since = None;
        }
        Ok(())
    }

    /// The client's query buffer: unparsed input plus the arguments of the
    /// request in progress.
    fn query_bytes(&self, parser: &RequestParser) -> usize {
        self.input.len() + parser.held_bytes()
    }

    /// Refreshes the settings and this client's entry in the memory table;
    /// closes the biggest clients when all together pass `maxmemory-clients`.
    fn account<B: Env + ?Sized>(&mut self, env: &B, parser: &RequestParser) -> Result<(), End> {
        let generation = self.limits.generation();
        if generation != self.generation {
            self.settings = self.limits.settings();
            self.generation = generation;
        }
        let bound = match self.settings.maxmemory_clients {
            MaxMemoryClients::Bytes(bytes) => bytes,
            percent => percent.bytes(env.kv_info().maxmemory),
        };
        if let Some(slot) = &self.slot {
            let held = self.input.capacity() + parser.held_bytes() + self.output.capacity();
            let picked = slot.update(held, bound);
            if !picked.is_empty() {
                self.limits.evict(&picked);
            }
            if slot.evicted() {
                return Err(End::Killed);
            }
        }
        Ok(())
    }

    /// Writes what the socket takes now, without waiting.
    fn try_write(&mut self) -> Result<(), End> {
        while !self.output.is_empty() {
            match self.stream.write(self.output.front()).now_or_never() {
                None => break,
                Some(Ok(0)) => return Err(End::Io(io::ErrorKind::WriteZero.into())),
                Some(Ok(written)) => self.wrote(written),
                Some(Err(error)) => return Err(End::Io(error)),
            }
        }
        if self.output.is_empty() && self.unflushed {
            if let Some(flushed) = self.stream.flush().now_or_never() {
                flushed?;
                self.unflushed = false;
            }
        }
        Ok(())
    }

    fn wrote(&mut self, written: usize) {
        if let Some(stats) = &self.stats {
            stats
                .traffic
                .net_output_bytes
                .fetch_add(written as u64, Ordering::Relaxed);
        }
        self.output.advance(written);
        self.unflushed = true;
        self.last_interaction = Instant::now();
    }

    /// Enforces the output limit; true when enough output is pending that
    /// [`Io::settle`] has work (the common case, false, costs no await).
    fn must_settle(&mut self) -> Result<bool, End> {
        self.check_output()?;
        Ok(self.output.len() >= FLUSH_AT_BYTES.min(self.stall_bytes()))
    }

    /// After a reply was appended: enforces the output limit, writes when
    /// enough is pending, and waits (reading nothing) while the client is
    /// behind by [`Io::stall_bytes`] or more.
    async fn settle(&mut self) -> Result<(), End> {
        if !self.must_settle()? {
            return Ok(());
        }
        if self.output.len() >= FLUSH_AT_BYTES {
            self.try_write()?;
        }
        while self.output.len() >= self.stall_bytes() {
            self.account_output();
            self.wait(false).await?;
            self.check_output()?;
        }
        Ok(())
    }

    /// Updates this client's entry in the memory table while it is stalled
    /// mid-batch (the query buffer is left as last counted).
    fn account_output(&mut self) {
        if let Some(slot) = &self.slot {
            let held = self.input.capacity() + self.output.capacity();
            let bound = match self.settings.maxmemory_clients {
                MaxMemoryClients::Bytes(bytes) => bytes,
                // A percentage needs maxmemory: checked at the next batch.
                MaxMemoryClients::Percent(_) => 0,
            };
            let picked = slot.update(held, bound);
            if !picked.is_empty() {
                self.limits.evict(&picked);
            }
        }
    }

    /// Waits for the socket to take output (and, with `read`, for input), a
    /// limit timer, or the kill switch.
    async fn wait(&mut self, read: bool) -> Result<Woken, End> {
        let limit = self.output_limit();
        let soft_deadline = self
            .soft_since
            .filter(|_| limit.soft_bytes > 0)
            .map(|since| {
                since + Duration::from_secs(limit.soft_seconds) + Duration::from_millis(1)
            });
        let idle_deadline = self
            .settings
            .idle_timeout()
            .map(|timeout| self.last_interaction + timeout);
        let Io {
            stream,
            input,
            output,
            unflushed,
            shutdown,
            ..
        } = self;
        let io = std::future::poll_fn(move |cx| {
            if !output.is_empty() {
                if let Poll::Ready(result) = Pin::new(&mut *stream).poll_write(cx, output.front()) {
                    return Poll::Ready(result.map(IoEvent::Wrote));
                }
            } else if *unflushed {
                if let Poll::Ready(result) = Pin::new(&mut *stream).poll_flush(cx) {
                    return Poll::Ready(result.map(|()| IoEvent::Flushed));
                }
            }
            if read {
                // Everything the socket has now, up to READ_AHEAD_BYTES.
                let mut total = 0;
                loop {
                    match tokio_util::io::poll_read_buf(Pin::new(&mut *stream), cx, &mut *input) {
                        Poll::Ready(Ok(0)) | Poll::Pending if total > 0 => break,
                        // A failure after some input: that input is served
                        // first, and the next read meets the failure again.
                        Poll::Ready(Err(_)) if total > 0 => break,
                        Poll::Ready(Ok(n)) if n > 0 => total += n,
                        Poll::Ready(result) => return Poll::Ready(result.map(IoEvent::Read)),
                        Poll::Pending => return Poll::Pending,
                    }
                    if input.len() < input.capacity() || input.len() >= READ_AHEAD_BYTES {
                        break;
                    }
                    input.reserve(input.len().min(READ_AHEAD_BYTES - input.len()));
                }
                return Poll::Ready(Ok(IoEvent::Read(total)));
            }
            Poll::Pending
        });
        let event = tokio::select! {
            event = io => event?,
            _ = shutdown.changed() => return Err(End::Killed),
            () = sleep_until(soft_deadline) => return Ok(Woken::Other),
            () = sleep_until(idle_deadline) => {
                return Err(End::Limit(LimitClose::Idle));
            }
        };
        match event {
            IoEvent::Wrote(0) => Err(End::Io(io::ErrorKind::WriteZero.into())),
            IoEvent::Wrote(written) => {
                self.wrote(written);
                Ok(Woken::Other)
            }
            IoEvent::Flushed => {
                self.unflushed = false;
                Ok(Woken::Other)
            }
            IoEvent::Read(0) => Err(End::Eof),
            IoEvent::Read(read) => {
                if let Some(stats) = &self.stats {
                    stats
                        .traffic
                        .net_input_bytes
                        .fetch_add(read as u64, Ordering::Relaxed);
                }
                self.last_interaction = Instant::now();
                Ok(Woken::Read)
            }
        }
    }

    /// Appends one tracking push as this client sees it.
    fn push_tracking(&mut self, push: &crate::node::tracking::Push, session: &Session) {
        super::tracking::encode_push(
            push,
            session.protocol,
            session.subscribed(),
            self.output.encoder(),
        );
    }

    /// Appends every tracking push queued so far.
    fn drain_pushes(&mut self, session: &Session) {
        let Some(rx) = &mut self.pushes else {
            return;
        };
        let mut queued = Vec::new();
        while let Ok(push) = rx.try_recv() {
            queued.push(push);
        }
        for push in queued {
            self.push_tracking(&push, session);
        }
    }

    /// Writes everything pending (limits and the kill switch still apply),
    /// then closes our side.
    async fn finish(&mut self) -> Result<(), End> {
        while !self.output.is_empty() || self.unflushed {
            self.wait(false).await?;
            self.check_output()?;
        }
        self.stream.shutdown().await?;
        Ok(())
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// What the socket did.
enum IoEvent {
    Wrote(usize),
    Flushed,
    Read(usize),
}

/// Serves one connection until the client closes it, sends QUIT, breaks the
/// protocol, breaks a client limit, or `shutdown` turns true.
///
/// # Errors
/// I/O errors on the stream.
pub async fn run<S, B>(
    stream: S,
    backend: &B,
    session: Session,
    limits: FrameLimits,
    counters: Option<&CommandCounters>,
    shutdown: watch::Receiver<bool>,
    account: ClientAccount,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    B: Backend,
{
    let ClientAccount {
        limits: client_limits,
        slot,
    } = account;
    let mut io = Io {
        stream,
        input: BytesMut::with_capacity(READ_CHUNK_BYTES),
        output: Outbuf::default(),
        unflushed: false,
        soft_since: None,
        last_interaction: Instant::now(),
        generation: client_limits.generation(),
        settings: client_limits.settings(),
        limits: client_limits.clone(),
        slot,
        shutdown,
        pubsub: false,
        stats: backend.stats().cloned(),
        // Every connection may be a redirection target.
        pushes: backend.tracking().map(|hub| hub.connect(session.id)),
    };
    let mut session = session;
    let mut parser = RequestParser::new(limits);
    let mut subs = Subs::default();
    let served = serve(
        &mut io,
        &mut parser,
        backend,
        &mut session,
        counters,
        &mut subs,
    )
    .await;
    if subs.registered {
        // Its subscriptions leave the registry through the log.
        if let Some(hub) = backend.pubsub() {
            hub.deregister(session.id);
        }
    }
    if subs.monitor.is_some() {
        if let Some(stats) = backend.stats() {
            stats.monitors.detach(session.id);
        }
    }
    if let Some(hub) = backend.tracking() {
        hub.disconnect(session.id);
    }
    let result = match served {
        // The client closed its side: it still gets the replies it is owed.
        Err(End::Eof) if !io.output.is_empty() => io.finish().await,
        other => other,
    };
    match result {
        Ok(()) | Err(End::Eof) => Ok(()),
        Err(End::Killed) => {
            // Whatever the socket takes at once; a client that does not read
            // does not hold up a kill or a shutdown.
            let _ = io.try_write();
            let _ = io.stream.shutdown().now_or_never();
            Ok(())
        }
        Err(End::Limit(why)) => {
            log_limit_close(why, &session, io.output.len(), io.query_bytes(&parser));
            client_limits.count_close(why);
            Ok(())
        }
        Err(End::Io(error)) => Err(error),
    }
}

/// The read → execute → write loop; returns when the connection must close.
async fn serve<S, B>(
    io: &mut Io<S>,
    parser: &mut RequestParser,
    backend: &B,
    session: &mut Session,
    counters: Option<&CommandCounters>,
    subs: &mut Subs,
) -> Result<(), End>
where
    S: AsyncRead + AsyncWrite + Unpin,
    B: Backend,
{
    let mut group = Group::Empty;
    loop {
        // Invalidations queued before this input was read precede its replies.
        io.drain_pushes(session);
        loop {
            match parser.next_request(&mut io.input) {
                Ok(Some(args)) => {
                    // An (un)subscribe joins the (un)subscribes before it;
                    // anything after them waits for their confirmations
                    // (subscribed mode depends on them).
                    let joins_subs = session.multi.is_none()
                        && args
                            .first()
                            .is_some_and(|n| super::commands::transactions::is_subscription(n));
                    let waits = match (&group, joins_subs) {
                        (Group::Subs(_) | Group::Empty, true) => false,
                        (Group::Subs(_), false) | (_, true) => true,
                        (_, false) => !groupable(session, &args),
                    };
                    if waits {
                        carry_out(backend, session, subs, &mut group, counters, io, parser).await?;
                    }
                    drain_frames(subs, session, io);
                    let reset = args
                        .first()
                        .is_some_and(|n| n.eq_ignore_ascii_case(b"reset"));
                    if reset && session.subscribed() {
                        leave_pubsub(backend, session, subs, io).await;
                    }
                    if reset && subs.monitor.take().is_some() {
                        if let Some(stats) = backend.stats() {
                            stats.monitors.detach(session.id);
                        }
                    }
                    let protocol = session.protocol;
                    let started = std::time::Instant::now();
                    let prepared = prepare(backend, session, &args);
                    feed_monitors(backend, session, &prepared, &args);
                    let mut request = Request { started, args };
                    let size: usize = request.args.iter().map(Bytes::len).sum();
                    // A write of the request's own arguments takes them; they
                    // come back to the request once it is answered.
                    let (prepared, lent) = match prepared {
                        Prepared::Action {
                            action: Action::WriteArgs(lent),
                            command,
                        } => (
                            Prepared::Action {
                                action: Action::Write(lent.take(&mut request.args)),
                                command,
                            },
                            Some(lent),
                        ),
                        other => (other, None),
                    };
                    let close = match prepared {
                        Prepared::Action {
                            action: Action::Write(op),
                            command,
                        } => {
                            if !matches!(group, Group::Writes { .. } | Group::Empty) {
                                carry_out(backend, session, subs, &mut group, counters, io, parser)
                                    .await?;
                            }
                            let member = Member {
                                item: (op, lent),
                                answer: Pending {
                                    command,
                                    protocol,
                                    request,
                                },
                            };
                            match &mut group {
                                Group::Writes { members, bytes } => {
                                    members.push(member);
                                    *bytes += size;
                                }
                                _ => {
                                    group = Group::Writes {
                                        members: vec![member],
                                        bytes: size,
                                    }
                                }
                            }
                            false
                        }
                        Prepared::Action {
                            action: Action::Read(f),
                            command,
                        } => {
                            if !matches!(group, Group::Reads(_) | Group::Empty) {
                                carry_out(backend, session, subs, &mut group, counters, io, parser)
                                    .await?;
                            }
                            let member = Member {
                                item: f,
                                answer: Pending {
                                    command,
                                    protocol,
                                    request,
                                },
                            };
                            match &mut group {
                                Group::Reads(members) => members.push(member),
                                _ => group = Group::Reads(vec![member]),
                            }
                            false
                        }
                        Prepared::Action {
                            action: Action::Block(block),
                            command,
                        } => {
                            if !matches!(group, Group::Pops(_) | Group::Empty) {
                                carry_out(backend, session, subs, &mut group, counters, io, parser)
                                    .await?;
                            }
                            let member = Member {
                                item: block,
                                answer: Pending {
                                    command,
                                    protocol,
                                    request,
                                },
                            };
                            match &mut group {
                                Group::Pops(members) => members.push(member),
                                _ => group = Group::Pops(vec![member]),
                            }
                            false
                        }
                        Prepared::Action {
                            action: Action::PubSub(change),
                            command,
                        } => {
                            if !matches!(group, Group::Subs(_) | Group::Empty) {
                                carry_out(backend, session, subs, &mut group, counters, io, parser)
                                    .await?;
                            }
                            let member = Member {
                                item: change,
                                answer: Pending {
                                    command,
                                    protocol,
                                    request,
                                },
                            };
                            match &mut group {
                                Group::Subs(members) => members.push(member),
                                _ => group = Group::Subs(vec![member]),
                            }
                            false
                        }
                        Prepared::Action {
                            action: Action::Exec(name),
                            command,
                        } if session.multi.as_ref().is_some_and(|queue| {
                            queue
                                .iter()
                                .any(|q| super::commands::transactions::is_subscription(&q.args[0]))
                        }) =>
                        {
                            carry_out(backend, session, subs, &mut group, counters, io, parser)
                                .await?;
                            exec_with_subscriptions(backend, session, name, subs, io).await?;
                            if let Some(counters) = counters {
                                let executed = Executed {
                                    reply: Reply::OK,
                                    close: false,
                                    command: Some(command),
                                    rejected: false,
                                    queued: false,
                                };
                                counters.finish(&executed, &request, session);
                            }
                            if io.must_settle()? {
                                io.settle().await?;
                            }
                            false
                        }
                        Prepared::Action { action, command } => {
                            carry_out(backend, session, subs, &mut group, counters, io, parser)
                                .await?;
                            let (reply, close) = match action {
                                Action::Monitor => (start_monitor(backend, session, subs), false),
                                // SHUTDOWN was accepted: Redis sends no reply,
                                // the client sees the connection close.
                                Action::Shutdown => return Err(End::Killed),
                                action => run_action(backend, session, action).await,
                            };
                            drain_frames(subs, session, io);
                            let executed = Executed {
                                reply,
                                close,
                                command: Some(command),
                                rejected: false,
                                queued: false,
                            };
                            let pending = Pending {
                                command,
                                protocol,
                                request,
                            };
                            let close =
                                answer(executed, &pending, counters, session, io.output.encoder());
                            if io.must_settle()? {
                                io.settle().await?;
                            }
                            close
                        }
                        Prepared::Done(executed) => {
                            carry_out(backend, session, subs, &mut group, counters, io, parser)
                                .await?;
                            // After `HELLO 3` this is already RESP3, as in Redis.
                            let pending = Pending {
                                command: executed.command.unwrap_or(usize::MAX),
                                protocol: session.protocol,
                                request,
                            };
                            let close =
                                answer(executed, &pending, counters, session, io.output.encoder());
                            if io.must_settle()? {
                                io.settle().await?;
                            }
                            close
                        }
                    };
                    if close {
                        carry_out(backend, session, subs, &mut group, counters, io, parser).await?;
                        publish(session);
                        return io.finish().await;
                    }
                    if group.is_full() {
                        carry_out(backend, session, subs, &mut group, counters, io, parser).await?;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    carry_out(backend, session, subs, &mut group, counters, io, parser).await?;
                    tracing::debug!(%error, "protocol error");
                    Reply::Error(error.to_string()).encode(session.protocol, io.output.encoder());
                    return io.finish().await;
                }
            }
        }
        carry_out(backend, session, subs, &mut group, counters, io, parser).await?;
        // Other connections' CLIENT LIST sees this one as of its last batch:
        // one uncontended lock per read, not per request.
        publish(session);
        io.check_output()?;
        if io.input.is_empty() && io.input.capacity() > SHRINK_INPUT_ABOVE_BYTES {
            // Give back what a big request grew the buffer to (Redis resizes
            // idle query buffers too); it counts against maxmemory-clients.
            io.input = BytesMut::with_capacity(READ_CHUNK_BYTES);
        }
        // Counted before the replies leave, so a client that has its reply
        // is never still counted at its old size.
        io.account(backend, parser)?;
        io.try_write()?;
        if *io.shutdown.borrow() {
            return Err(End::Killed);
        }
        let wanted = parser
            .bytes_needed(&io.input)
            .clamp(READ_CHUNK_BYTES, MAX_RESERVE_BYTES);
        if io.input.capacity() - io.input.len() < wanted {
            io.input.reserve(wanted);
        }
        // Wait for input, writing pending output meanwhile; stop reading
        // while the client is behind by the stall bound.
        loop {
            if !io.output.is_empty() {
                io.account(backend, parser)?;
            }
            let read = io.output.len() < io.stall_bytes();
            // Out of `io` while `io.wait` holds it; put back in every arm.
            let mut pushes = io.pushes.take();
            let woken = tokio::select! {
                woken = io.wait(read) => {
                    io.pushes = pushes;
                    woken?
                }
                push = next_push(&mut pushes) => {
                    io.pushes = pushes;
                    io.push_tracking(&push, session);
                    io.check_output()?;
                    continue;
                }
                frame = next_frame(&mut subs.rx) => {
                    io.pushes = pushes;
                    push_frame(&frame, session, io);
                    io.check_output()?;
                    continue;
                }
                line = next_monitor_line(&mut subs.monitor, read) => {
                    io.pushes = pushes;
                    match line {
                        Some(line) => io.output.encoder().extend_from_slice(&line),
                        // Dropped for falling behind: as an output limit.
                        None => return Err(End::Limit(LimitClose::OutputHard)),
                    }
                    io.check_output()?;
                    continue;
                }
            };
            io.check_output()?;
            if matches!(woken, Woken::Read) {
                let query = io.query_bytes(parser) as u64;
                if query > io.settings.query_buffer_limit_bytes {
                    return Err(End::Limit(LimitClose::QueryBuffer));
                }
                break;
            }
        }
    }
}

/// The connection's end of Pub/Sub delivery (`node/pubsub.rs`) and of the
/// MONITOR feed (`server/monitor.rs`).
#[derive(Default)]
struct Subs {
    /// Frames apply queued for this client, once it has subscribed.
    rx: Option<tokio::sync::mpsc::UnboundedReceiver<Frame>>,
    /// Registered with the hub at some point (it must hear of the close).
    registered: bool,
    /// Lines for this client once it sent MONITOR.
    monitor: Option<tokio::sync::mpsc::Receiver<Bytes>>,
}

/// The next MONITOR line for this client (None: it was dropped for falling
/// behind); never while it is not monitoring or may not take output.
async fn next_monitor_line(
    monitor: &mut Option<tokio::sync::mpsc::Receiver<Bytes>>,
    room: bool,
) -> Option<Bytes> {
    match monitor {
        Some(rx) if room => rx.recv().await,
        _ => std::future::pending().await,
    }
}

/// `MONITOR`: attaches this connection to the node's feed.
fn start_monitor<B: Env>(backend: &B, session: &Session, subs: &mut Subs) -> Reply {
    match backend.stats() {
        Some(stats) => {
            subs.monitor = Some(stats.monitors.attach(session.id));
            Reply::OK
        }
        None => Reply::error("ERR MONITOR needs a node"),
    }
}

/// Shows a prepared request to the MONITOR clients, unless it was refused
/// (or is queued, or is EXEC: `transactions::exec` shows those).
fn feed_monitors<B: Env>(backend: &B, session: &Session, prepared: &Prepared, args: &[Bytes]) {
    let Some(stats) = backend.stats() else {
        return;
    };
    if stats.monitors.is_empty() {
        return;
    }
    let command = match prepared {
        // Queued commands and EXEC are shown when EXEC runs them, in
        // Redis's order: each queued command, then EXEC.
        Prepared::Done(executed) if executed.rejected || executed.queued => None,
        Prepared::Done(executed) => executed.command,
        Prepared::Action {
            action: Action::Exec(_),
            ..
        } => None,
        Prepared::Action { command, .. } => Some(*command),
    };
    if let Some(spec) = command.and_then(|i| super::command::COMMANDS.get(i)) {
        stats.monitors.feed(spec, session, args);
    }
}

/// The next tracking push for this client; never without a queue.
async fn next_push(pushes: &mut Option<Pushes>) -> crate::node::tracking::Push {
    match pushes {
        Some(rx) => match rx.recv().await {
            Some(push) => push,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// The next frame for this client; never, when it has no subscription.
async fn next_frame(rx: &mut Option<tokio::sync::mpsc::UnboundedReceiver<Frame>>) -> Frame {
    match rx {
        Some(rx) => match rx.recv().await {
            Some(frame) => frame,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// Appends every frame already queued for the client. The hub queues an
/// entry's frames before any write of its batch is answered, so draining
/// before each reply and each new request keeps Redis's order: a message is
/// ahead of the reply to the PUBLISH that sent it (a RESP3 client's own
/// subscription) and of the reply to any command sent after that PUBLISH
/// was acknowledged, by any client.
fn drain_frames<S>(subs: &mut Subs, session: &mut Session, io: &mut Io<S>) {
    if let Some(rx) = subs.rx.as_mut() {
        while let Ok(frame) = rx.try_recv() {
            push_frame(&frame, session, io);
        }
    }
}

/// Appends a frame for the client and follows its subscription counts
/// (and CLIENT LIST's view of them: a subscriber may send nothing more).
fn push_frame<S>(frame: &Frame, session: &mut Session, io: &mut Io<S>) {
    if let Frame::Confirm { word, count, .. } = frame {
        // A confirmation's count is channels plus patterns (shard channels
        // on their own), and a (un)subscribe changes one kind only: the
        // other kind's count is unchanged, which splits the total.
        match *word {
            "ssubscribe" | "sunsubscribe" => session.shard_subscriptions = *count,
            "psubscribe" | "punsubscribe" => {
                let channels = session.subscriptions - session.pattern_subscriptions;
                session.pattern_subscriptions = (*count - channels).max(0);
                session.subscriptions = *count;
            }
            _ => session.subscriptions = *count,
        }
        io.pubsub = session.subscribed();
        super::command::publish(session);
    }
    super::pubsub::encode_frame(frame, session.protocol, io.output.encoder());
}

/// Longest a connection waits for its own node to apply an (un)subscribe
/// the cluster acknowledged (a follower may apply after the leader answers).
const APPLY_WAIT: Duration = Duration::from_secs(10);

/// Proposes (un)subscribes as one ordered batch (registering with the hub
/// first): their entries are consecutive in the log. Per change, `Ok` once
/// the cluster applied it (its confirmations are on their way, see
/// [`await_applied`]), or the error reply.
async fn propose_changes<B: Backend>(
    backend: &B,
    session: &Session,
    subs: &mut Subs,
    changes: Vec<super::pubsub::Change>,
) -> Vec<Result<(), Reply>> {
    let Some(hub) = backend.pubsub() else {
        return changes
            .iter()
            .map(|_| Err(Reply::error("ERR Pub/Sub needs a node")))
            .collect();
    };
    if subs.rx.is_none() {
        subs.rx = Some(hub.register(session.id));
        subs.registered = true;
    }
    let n = changes.len();
    let ops = changes
        .into_iter()
        .map(|change| Op::PubSub(change.op(hub.subscriber(session.id))))
        .collect();
    let mut results: Vec<Result<(), Reply>> = backend
        .write_batch(Arc::new(ops))
        .await
        .into_iter()
        .map(|result| result.map(|_| ()).map_err(|e| write_reply(Err(e))))
        .collect();
    results.resize_with(n, || {
        Err(write_reply(Err(crate::node::RequestError::OutcomeUnknown(
            "no reply for the subscription change".to_string(),
        ))))
    });
    results
}

/// Forwards every frame up to the next applied (un)subscribe's marker
/// (its confirmations come just before it). Returns the error reply when
/// this node has not applied it by `deadline`.
async fn await_applied<S>(
    session: &mut Session,
    subs: &mut Subs,
    io: &mut Io<S>,
    deadline: Instant,
) -> Result<Option<Reply>, End>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        tokio::select! {
            frame = next_frame(&mut subs.rx) => {
                if frame == Frame::Applied {
                    return Ok(None);
                }
                push_frame(&frame, session, io);
                if io.must_settle()? {
                    io.settle().await?;
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                return Ok(Some(Reply::error(
                    "ERR the subscription change was applied by the cluster but not yet by this node; its confirmations will follow",
                )));
            }
        }
    }
}

/// Carries out pipelined (un)subscribes (see [`Group::Subs`]): one ordered
/// batch, then each one's confirmations (or error) in request order.
async fn change_subscriptions<B, S>(
    backend: &B,
    session: &mut Session,
    subs: &mut Subs,
    members: Vec<Member<super::pubsub::Change>>,
    counters: Option<&CommandCounters>,
    io: &mut Io<S>,
) -> Result<(), End>
where
    B: Backend,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (changes, answers): (Vec<_>, Vec<Pending>) =
        members.into_iter().map(|m| (m.item, m.answer)).unzip();
    let results = propose_changes(backend, session, subs, changes).await;
    let deadline = Instant::now() + APPLY_WAIT;
    for (result, pending) in results.into_iter().zip(answers) {
        let error = match result {
            Ok(()) => await_applied(session, subs, io, deadline).await?,
            Err(reply) => Some(reply),
        };
        let failed = error.is_some();
        if let Some(reply) = error {
            reply.encode(session.protocol, io.output.encoder());
        }
        if let Some(counters) = counters {
            let executed = Executed {
                reply: if failed {
                    Reply::error("ERR")
                } else {
                    Reply::OK
                },
                close: false,
                command: Some(pending.command),
                rejected: false,
                queued: false,
            };
            counters.finish(&executed, &pending.request, session);
        }
        if io.must_settle()? {
            io.settle().await?;
        }
    }
    Ok(())
}

/// `EXEC` of a transaction that queued (un)subscribes, as Redis 7.0
/// answers it: the array's length counts the queued commands, and each
/// (un)subscribe puts its confirmations in its place — one per channel, so
/// with several channels there are more elements than the length says, as
/// in Redis. The key-space commands run in the transaction's entry and the
/// (un)subscribes after it as one ordered batch (like the other local
/// commands, after the entry).
async fn exec_with_subscriptions<B, S>(
    backend: &B,
    session: &mut Session,
    name: Bytes,
    subs: &mut Subs,
    io: &mut Io<S>,
) -> Result<(), End>
where
    B: Backend,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (total, taken) = super::commands::transactions::take_subscriptions(session);
    let reply = super::commands::transactions::exec(backend, session, name).await;
    let Reply::Array(replies) = reply else {
        // EXECABORT, an aborted WATCH, an error of the entry: nothing ran.
        reply.encode(session.protocol, io.output.encoder());
        return Ok(());
    };
    // Each queued (un)subscribe: its change, or its error (or nothing).
    let mut places = Vec::with_capacity(taken.len());
    let mut changes = Vec::new();
    for (place, args) in taken {
        let outcome = match lookup(&args[0]) {
            None => Err(Some(super::command::unknown_command(&args).into())),
            Some((_, spec)) => match super::command::dispatch(spec, session, backend, &args) {
                Ok(Action::PubSub(change)) => {
                    changes.push(change);
                    Ok(())
                }
                Ok(_) => Err(None),
                Err(error) => Err(Some(error.into())),
            },
        };
        places.push((place, outcome));
    }
    let mut proposed = propose_changes(backend, session, subs, changes)
        .await
        .into_iter();
    let deadline = Instant::now() + APPLY_WAIT;
    io.output
        .encoder()
        .extend_from_slice(format!("*{total}\r\n").as_bytes());
    let mut replies = replies.into_iter();
    let mut places = places.into_iter().peekable();
    for at in 0..total {
        let Some((_, outcome)) = places.next_if(|(place, _)| *place == at) else {
            replies
                .next()
                .unwrap_or(Reply::Null)
                .encode(session.protocol, io.output.encoder());
            continue;
        };
        let error = match outcome {
            Ok(()) => match proposed.next() {
                Some(Ok(())) => await_applied(session, subs, io, deadline).await?,
                Some(Err(reply)) => Some(reply),
                None => None,
            },
            Err(error) => error,
        };
        if let Some(reply) = error {
            reply.encode(session.protocol, io.output.encoder());
        }
    }
    Ok(())
}

/// `RESET` of a subscribed client: its subscriptions leave the registry
/// and frames still on their way are dropped.
async fn leave_pubsub<B, S>(backend: &B, session: &mut Session, subs: &mut Subs, io: &mut Io<S>)
where
    B: Backend,
{
    if let Some(hub) = backend.pubsub() {
        let who = vec![hub.subscriber(session.id)];
        let _ = backend
            .write(Op::PubSub(crate::kv::pubsub::PubSubOp::DropClients { who }))
            .await;
    }
    subs.rx = None;
    session.subscriptions = 0;
    session.pattern_subscriptions = 0;
    session.shard_subscriptions = 0;
    io.pubsub = false;
    super::command::publish(session);
}

/// Runs a blocking command while watching the socket: a client that closes
/// its connection stops waiting at once (its place in line is given up), and
/// what it sends meanwhile is kept for after the reply. A blocked client is
/// not idle (Redis exempts blocked clients from `timeout`).
async fn blocked<B, S>(
    backend: &B,
    block: super::blocking::Block,
    io: &mut Io<S>,
    parser: &RequestParser,
) -> Result<Reply, End>
where
    B: Backend,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let waiting = super::blocking::block(backend, block);
    tokio::pin!(waiting);
    loop {
        let read = io.output.len() < io.stall_bytes();
        tokio::select! {
            reply = &mut waiting => return Ok(reply),
            woken = io.wait(read) => match woken {
                Ok(Woken::Read) => {
                    let query = io.query_bytes(parser) as u64;
                    if query > io.settings.query_buffer_limit_bytes {
                        return Err(End::Limit(LimitClose::QueryBuffer));
                    }
                }
                Ok(Woken::Other) => io.check_output()?,
                Err(End::Limit(LimitClose::Idle)) => io.last_interaction = Instant::now(),
                Err(end) => return Err(end),
            },
        }
    }
}

/// Carries out pipelined blocking commands (see [`Group::Pops`]): one
/// attempt of all of them in one entry when there are several, then each
/// one that still has to wait, in order, with the socket watched.
async fn pops<B, S>(
    backend: &B,
    members: Vec<Member<super::blocking::Block>>,
    counters: Option<&CommandCounters>,
    session: &Session,
    io: &mut Io<S>,
    parser: &RequestParser,
) -> Result<(), End>
where
    B: Backend,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut waiting = members;
    if waiting.len() > 1 {
        let commands = waiting.iter().map(|m| m.item.attempt()).collect();
        let result = backend.write(Op::Pops { commands }).await;
        let mut all = std::mem::take(&mut waiting).into_iter();
        let (mut replies, mut answers) = (Vec::new(), Vec::new());
        let mut failed = None;
        match result {
            Ok(crate::kv::Output::Array(outputs)) => {
                for output in outputs {
                    let Some(m) = all.next() else { break };
                    if crate::kv::blocking::found_nothing(&output) {
                        waiting.push(m);
                        break;
                    }
                    replies.push(Reply::from(output));
                    answers.push(m.answer);
                }
                waiting.extend(all);
            }
            // Nothing was applied: each one attempts on its own.
            Err(e) if super::blocking::retryable(&e) => waiting.extend(all),
            other => {
                answers.extend(all.map(|m| m.answer));
                failed = Some(write_reply(other));
            }
        }
        let missing = || {
            failed.clone().unwrap_or_else(|| {
                write_reply(Err(crate::node::RequestError::OutcomeUnknown(
                    "no reply for the pop".to_string(),
                )))
            })
        };
        emit(replies, answers, missing, counters, session, io).await?;
    }
    for m in waiting {
        let answers = vec![m.answer];
        let reply = blocked(backend, m.item, io, parser).await?;
        emit(vec![reply], answers, || Reply::Null, counters, session, io).await?;
    }
    Ok(())
}

/// Counts a request and appends its reply; returns whether to close.
fn answer(
    executed: Executed,
    pending: &Pending,
    counters: Option<&CommandCounters>,
    session: &Session,
    output: &mut BytesMut,
) -> bool {
    if let Some(counters) = counters {
        counters.finish(&executed, &pending.request, session);
    }
    executed.reply.encode(pending.protocol, output);
    executed.close
}

/// About how many bytes `reply` takes encoded (the read barrier's budget).
fn reply_bytes(reply: &Reply) -> usize {
    const FRAME: usize = 16;
    match reply {
        Reply::Bulk(bytes) => FRAME + bytes.len(),
        Reply::Error(text) | Reply::Status(text) | Reply::Verbatim(text) => FRAME + text.len(),
        Reply::Array(items) => FRAME + items.iter().map(reply_bytes).sum::<usize>(),
        Reply::Map(pairs) | Reply::Pairs(pairs) => {
            FRAME
                + pairs
                    .iter()
                    .map(|(k, v)| reply_bytes(k) + reply_bytes(v))
                    .sum::<usize>()
        }
        _ => FRAME,
    }
}

/// The replies one read barrier produces before the rest of its group waits
/// for another: a deep pipeline of big reads is answered a bounded amount at
/// a time, so its replies never all sit in memory at once.
const READ_BARRIER_BUDGET_BYTES: usize = FLUSH_AT_BYTES;

/// Carries out the waiting group (one ordered write batch, or read barriers
/// for its reads) and appends the replies in request order, settling the
/// output (limits, writes, back-pressure) as they are appended.
async fn carry_out<B, S>(
    backend: &B,
    session: &mut Session,
    subs: &mut Subs,
    group: &mut Group,
    counters: Option<&CommandCounters>,
    io: &mut Io<S>,
    parser: &RequestParser,
) -> Result<(), End>
where
    B: Backend,
    S: AsyncRead + AsyncWrite + Unpin,
{
    match std::mem::replace(group, Group::Empty) {
        Group::Empty => Ok(()),
        Group::Pops(members) => pops(backend, members, counters, session, io, parser).await,
        Group::Subs(members) => {
            change_subscriptions(backend, session, subs, members, counters, io).await
        }
        Group::Writes { members, .. } => {
            let mut ops = Vec::with_capacity(members.len());
            let mut lents = Vec::with_capacity(members.len());
            let mut answers = Vec::with_capacity(members.len());
            for Member {
                item: (op, lent),
                answer,
            } in members
            {
                ops.push(op);
                lents.push(lent);
                answers.push(answer);
            }
            let ops = Arc::new(ops);
            let replies: Vec<Reply> = match unchanged_replies(backend, &ops).await {
                Some(replies) => replies,
                None => backend
                    .write_batch(Arc::clone(&ops))
                    .await
                    .into_iter()
                    .map(write_reply)
                    .collect(),
            };
            give_back(ops, &lents, &mut answers);
            drain_frames(subs, session, io);
            let missing = || {
                write_reply(Err(crate::node::RequestError::OutcomeUnknown(
                    "no reply for the write".to_string(),
                )))
            };
            emit(replies, answers, missing, counters, session, io).await
        }
        Group::Reads(members) => {
            let (mut reads, mut answers): (Vec<ReadFn>, Vec<Pending>) =
                members.into_iter().map(|m| (m.item, m.answer)).unzip();
            // The reads left for later barriers, last first. Shared with the
            // barrier's closure rather than returned from it: the read's
            // result type cannot hold the reads themselves.
            reads.reverse();
            let left = Arc::new(std::sync::Mutex::new(reads));
            loop {
                let queue = left.clone();
                let some: ReadWith<Vec<Reply>> = Box::new(move |db, ctx| {
                    let mut queue = queue.lock().unwrap_or_else(|e| e.into_inner());
                    let mut replies = Vec::new();
                    let mut bytes = 0;
                    while let Some(f) = queue.pop() {
                        let reply = f(db, ctx);
                        bytes += reply_bytes(&reply);
                        replies.push(reply);
                        if bytes >= READ_BARRIER_BUDGET_BYTES {
                            break;
                        }
                    }
                    replies
                });
                let result = if session.readonly {
                    backend.read_local(some)
                } else {
                    backend.read(some).await
                };
                let remaining = {
                    let mut queue = left.lock().unwrap_or_else(|e| e.into_inner());
                    if result.is_err() {
                        queue.clear();
                    }
                    queue.len()
                };
                drain_frames(subs, session, io);
                let replies = match result {
                    Ok(replies) => replies,
                    Err(error) => answers
                        .iter()
                        .map(|_| CommandError::from(error.clone()).into())
                        .collect(),
                };
                let done: Vec<Pending> = answers.drain(..answers.len() - remaining).collect();
                // Invalidations queued by the entries this read saw go out
                // before its replies (the ordering `node/tracking.rs` promises).
                io.drain_pushes(session);
                let missing = || Reply::Error("ERR no reply for the read".to_string());
                emit(replies, done, missing, counters, session, io).await?;
                if remaining == 0 {
                    break;
                }
            }
            Ok(())
        }
    }
}

/// Puts each write's arguments back into its request, where the statistics
/// read them ([`Lent::give_back`]): moved when nothing else holds the
/// operations any more (the usual case once their replies are in), copied
/// otherwise.
fn give_back(ops: Arc<Vec<Op>>, lents: &[Option<Lent>], answers: &mut [Pending]) {
    if lents.iter().all(Option::is_none) {
        return;
    }
    let ops = Arc::try_unwrap(ops).unwrap_or_else(|shared| shared.as_ref().clone());
    for ((op, lent), pending) in ops.into_iter().zip(lents).zip(answers) {
        if let Some(lent) = lent {
            lent.give_back(op, &mut pending.request.args);
        }
    }
}

/// The replies of a write group in which no write would change anything
/// (`kv/unchanged.rs`: SADD of present members, SET NX of an existing key),
/// answered without a log entry, as Redis answers them without an AOF write.
///
/// The local map is asked first, at once: a hint that is usually right on
/// the leader and spares a write that would change something the read
/// barrier. When it says nothing would change, the map is asked again after
/// a linearizable read barrier, and that answer stands: the writes are
/// linearized at the read, like a GET. `None` (something would change, the
/// barrier failed, or an operation has no probe): the group goes to the log.
async fn unchanged_replies<B: Backend>(backend: &B, ops: &[Op]) -> Option<Vec<Reply>> {
    if !ops.iter().all(crate::kv::may_be_unchanged) {
        return None;
    }
    fn probe(db: &crate::kv::Db, now_ms: u64, ops: &[Op]) -> Option<Vec<crate::kv::Output>> {
        ops.iter().map(|op| db.unchanged(op, now_ms)).collect()
    }
    backend
        .read_local(|db, ctx| probe(db, ctx.now_ms, ops))
        .ok()??;
    let ops = ops.to_vec();
    let outputs = backend
        .read(Box::new(move |db, ctx| probe(db, ctx.now_ms, &ops)))
        .await
        .ok()??;
    Some(outputs.into_iter().map(Reply::from).collect())
}

/// Appends `replies` for `answers` in order, settling after each; an answer
/// the replies run short of gets `missing()` (built only then).
async fn emit<S: AsyncRead + AsyncWrite + Unpin>(
    replies: Vec<Reply>,
    answers: Vec<Pending>,
    missing: impl Fn() -> Reply,
    counters: Option<&CommandCounters>,
    session: &Session,
    io: &mut Io<S>,
) -> Result<(), End> {
    let mut replies = replies.into_iter();
    // The group ends now for each of its requests (one clock read for all).
    let end = std::time::Instant::now();
    let usec = |pending: &Pending| pending.request.usec_until(end);
    let mut superseded = counters.map_or(0, |counters| {
        counters.stats().superseded_in_slow_log(
            answers
                .iter()
                .map(|p| (Some(p.command), &p.request.args[..], usec(p))),
        )
    });
    for pending in answers {
        let executed = Executed {
            reply: replies.next().unwrap_or_else(&missing),
            close: false,
            command: Some(pending.command),
            rejected: false,
            queued: false,
        };
        if let Some(counters) = counters {
            let usec = usec(&pending);
            // The first `superseded` requests the slow log would take.
            let passed_over = superseded > 0
                && counters
                    .stats()
                    .slow_logs(Some(pending.command), &pending.request.args, usec);
            superseded -= usize::from(passed_over);
            counters.finish_timed(&executed, &pending.request, usec, passed_over, session);
        }
        executed.reply.encode(pending.protocol, io.output.encoder());
        if io.must_settle()? {
            io.settle().await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Poll};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use tokio::io::{duplex, DuplexStream, ReadBuf};

    use super::*;
    use crate::server::command::fake::FakeBackend;

    /// Counts the writes that reach the socket.
    struct CountingStream {
        inner: DuplexStream,
        writes: Arc<AtomicUsize>,
    }

    impl AsyncRead for CountingStream {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for CountingStream {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
            if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
                self.writes.fetch_add(1, Ordering::Relaxed);
            }
            polled
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }
        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    struct Outcome {
        output: Vec<u8>,
        writes: usize,
        result: io::Result<()>,
    }

    /// Sends `input` in one write, then half-closes, and collects everything
    /// the server writes until it closes.
    async fn converse(backend: &FakeBackend, input: &[u8], close_input: bool) -> Outcome {
        let (client, server) = duplex(1 << 20);
        let writes = Arc::new(AtomicUsize::new(0));
        let server = CountingStream {
            inner: server,
            writes: writes.clone(),
        };
        let (_shutdown_tx, shutdown_rx) = watch::channel(false);
        let session = Session::new(1, None, None);
        let (mut client_read, mut client_write) = tokio::io::split(client);
        let serve = run(
            server,
            backend,
            session,
            FrameLimits::default(),
            None,
            shutdown_rx,
            ClientAccount::untracked(Arc::new(ClientLimits::default())),
        );
        let talk = async {
            client_write.write_all(input).await.expect("pipe open");
            if close_input {
                client_write.shutdown().await.expect("pipe open");
            }
            let mut output = Vec::new();
            client_read
                .read_to_end(&mut output)
                .await
                .expect("pipe open");
            output
        };
        let (result, output) = tokio::join!(serve, talk);
        Outcome {
            output,
            writes: writes.load(Ordering::Relaxed),
            result,
        }
    }

    #[tokio::test]
    async fn pipelined_requests_get_ordered_replies_in_one_write() {
        let backend = FakeBackend::new();
        let out = converse(
            &backend,
            b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\nGET a\r\n*2\r\n$3\r\nGET\r\n$1\r\nb\r\nPING\r\nNOSUCH\r\nDEL a b\r\n",
            true,
        )
        .await;
        assert!(out.result.is_ok());
        assert_eq!(
            String::from_utf8_lossy(&out.output),
            "+OK\r\n$1\r\n1\r\n$-1\r\n+PONG\r\n-ERR unknown command 'NOSUCH', with args beginning with: \r\n:1\r\n"
        );
        assert_eq!(out.writes, 1, "one write for the whole batch");
    }

    /// Pipelined blocking commands: their first attempts are one entry; the
    /// first that finds nothing waits (here, for its timeout) before anything
    /// after it runs, as in Redis; replies stay in request order.
    #[tokio::test]
    async fn pipelined_blocking_pops_are_one_entry_until_one_must_wait() {
        let backend = FakeBackend::new();
        let out = converse(
            &backend,
            b"RPUSH q a b c\r\nBLPOP q 0\r\nBLPOP q 0\r\nBRPOP q 0\r\nBLPOP q 0.02\r\nLPUSH q z\r\nBLPOP q 0\r\nQUIT\r\n",
            // Not half-closed: a blocked client whose input ends has left.
            false,
        )
        .await;
        assert!(out.result.is_ok());
        let pair = |v: &str| format!("*2\r\n$1\r\nq\r\n$1\r\n{v}\r\n");
        assert_eq!(
            String::from_utf8_lossy(&out.output),
            format!(
                ":3\r\n{}{}{}*-1\r\n:1\r\n{}+OK\r\n",
                pair("a"),
                pair("b"),
                pair("c"),
                pair("z")
            )
        );
        let proposed = backend.proposed.lock().unwrap().clone();
        let pops: Vec<usize> = proposed
            .iter()
            .filter_map(|op| match op {
                Op::Pops { commands } => Some(commands.len()),
                _ => None,
            })
            .collect();
        assert_eq!(pops, [4], "one entry for the four pipelined pops");
    }

    /// Consecutive pipelined writes go to the node as one ordered batch; a
    /// read after them waits for them and sees their effect; a write after a
    /// read starts a new batch; replies stay in request order.
    #[tokio::test]
    async fn pipelined_writes_are_one_ordered_batch_and_reads_see_them() {
        let backend = FakeBackend::new();
        let out = converse(
            &backend,
            b"SET a 1\r\nINCR n\r\nINCR n\r\nGET a\r\nGET n\r\nSET a 2\r\nGET a\r\n",
            true,
        )
        .await;
        assert!(out.result.is_ok());
        assert_eq!(
            String::from_utf8_lossy(&out.output),
            "+OK\r\n:1\r\n:2\r\n$1\r\n1\r\n$1\r\n2\r\n+OK\r\n$1\r\n2\r\n"
        );
        assert_eq!(
            *backend.batches.lock().unwrap(),
            2,
            "SET INCR INCR is one batch, the last SET another"
        );
    }

    /// A deep pipeline already in the socket is read as far as
    /// READ_AHEAD_BYTES and carried out in groups of MAX_GROUP_REQUESTS, not
    /// one 16 KiB read at a time: each group waits for a commit, so a bulk
    /// load's speed is set by the group size.
    #[tokio::test]
    async fn a_deep_pipeline_is_carried_out_in_few_large_groups() {
        let sets = |n: usize| {
            (0..n)
                .map(|i| format!("*3\r\n$3\r\nSET\r\n$10\r\nkey:{i:06}\r\n$5\r\nvalue\r\n"))
                .collect::<String>()
        };
        // 3,000 SETs, 108 KB: one read, one group.
        let backend = FakeBackend::new();
        let input = sets(3000);
        assert!(input.len() > 6 * READ_CHUNK_BYTES);
        let out = converse(&backend, input.as_bytes(), true).await;
        assert!(out.result.is_ok());
        assert_eq!(out.output, "+OK\r\n".repeat(3000).as_bytes());
        assert_eq!(*backend.batches.lock().unwrap(), 1);
        // 5,000: a full group of MAX_GROUP_REQUESTS, then the rest.
        let backend = FakeBackend::new();
        let out = converse(&backend, sets(5000).as_bytes(), true).await;
        assert!(out.result.is_ok());
        assert_eq!(out.output, "+OK\r\n".repeat(5000).as_bytes());
        assert_eq!(*backend.batches.lock().unwrap(), 2);
        assert_eq!(*backend.proposals.lock().unwrap(), 5000);
        assert_eq!(backend.db.lock().unwrap().dbs[0].map.len(), 5000);
    }

    /// A write group in which nothing would change is answered after a read
    /// barrier, with no proposal; one write in it that would change
    /// something sends the whole group to the log, in order.
    #[tokio::test]
    async fn writes_that_change_nothing_are_answered_without_a_proposal() {
        let backend = FakeBackend::new();
        let out = converse(
            &backend,
            b"SADD s a b\r\nGET x\r\nSADD s a\r\nSREM s z\r\nSET s v NX\r\nGET x\r\n\
              SADD s a\r\nSADD s c\r\nSREM s z\r\n",
            true,
        )
        .await;
        assert!(out.result.is_ok());
        assert_eq!(
            String::from_utf8_lossy(&out.output),
            ":2\r\n$-1\r\n:0\r\n:0\r\n$-1\r\n$-1\r\n:0\r\n:1\r\n:0\r\n"
        );
        assert_eq!(
            *backend.batches.lock().unwrap(),
            2,
            "the first SADD, then the last three writes (SADD s c adds)"
        );
        assert_eq!(*backend.proposals.lock().unwrap(), 4);
    }

    /// A request that changes connection state waits for the group before it,
    /// whose replies keep the protocol they were read under.
    #[tokio::test]
    async fn hello_inside_a_pipeline_leaves_earlier_replies_in_resp2() {
        let backend = FakeBackend::new();
        let out = converse(
            &backend,
            b"SET a 1\r\nGET nosuch\r\nHELLO 3\r\nGET nosuch\r\n",
            true,
        )
        .await;
        let text = String::from_utf8_lossy(&out.output).to_string();
        assert!(text.starts_with("+OK\r\n$-1\r\n%"), "{text:?}");
        assert!(text.ends_with("_\r\n"), "{text:?}");
    }

    /// A bad command among pipelined writes gets its error in its place, and
    /// the writes around it still apply in order.
    #[tokio::test]
    async fn an_error_inside_a_write_pipeline_keeps_its_place() {
        let backend = FakeBackend::new();
        let out = converse(&backend, b"SET a 1\r\nSET b\r\nINCR a\r\n", true).await;
        assert_eq!(
            String::from_utf8_lossy(&out.output),
            "+OK\r\n-ERR wrong number of arguments for 'set' command\r\n:2\r\n"
        );
    }

    #[tokio::test]
    async fn framing_error_is_answered_then_the_connection_closes() {
        let backend = FakeBackend::new();
        let out = converse(
            &backend,
            b"PING\r\n*1\r\n*1\r\n$4\r\nPING\r\nPING\r\n",
            false,
        )
        .await;
        assert_eq!(
            String::from_utf8_lossy(&out.output),
            "+PONG\r\n-ERR Protocol error: expected '$', got '*'\r\n"
        );
    }

    #[tokio::test]
    async fn deeply_nested_request_does_not_crash() {
        let backend = FakeBackend::new();
        let input = b"*1\r\n".repeat(100_000);
        let out = converse(&backend, &input, false).await;
        assert_eq!(
            String::from_utf8_lossy(&out.output),
            "-ERR Protocol error: expected '$', got '*'\r\n"
        );
    }

    #[tokio::test]
    async fn quit_replies_ok_and_closes() {
        let backend = FakeBackend::new();
        let out = converse(&backend, b"PING\r\nQUIT\r\nPING\r\n", false).await;
        assert_eq!(&out.output[..], b"+PONG\r\n+OK\r\n");
    }

    #[tokio::test]
    async fn hello_3_switches_the_encoding_of_later_replies() {
        let backend = FakeBackend::new();
        let out = converse(
            &backend,
            b"GET x\r\nHELLO 3\r\nGET x\r\nHELLO 2\r\nGET x\r\n",
            true,
        )
        .await;
        let text = String::from_utf8_lossy(&out.output);
        assert!(text.starts_with("$-1\r\n%7\r\n"), "{text}");
        assert!(text.contains("*0\r\n_\r\n*14\r\n"), "{text}");
        assert!(text.ends_with("*0\r\n$-1\r\n"), "{text}");
    }

    #[tokio::test]
    async fn request_split_across_reads_is_served() {
        let backend = FakeBackend::new();
        let (mut client, server) = duplex(1 << 16);
        let (_shutdown_tx, shutdown_rx) = watch::channel(false);
        let serve = run(
            server,
            &backend,
            Session::new(1, None, None),
            FrameLimits::default(),
            None,
            shutdown_rx,
            ClientAccount::untracked(Arc::new(ClientLimits::default())),
        );
        let talk = async {
            for part in [&b"*2\r\n$4\r\nEC"[..], b"HO\r\n$3\r\nab", b"c\r\n"] {
                client.write_all(part).await.expect("pipe open");
                tokio::task::yield_now().await;
            }
            let mut reply = [0u8; 9];
            client.read_exact(&mut reply).await.expect("reply");
            client.shutdown().await.expect("pipe open");
            reply
        };
        let (result, reply) = tokio::join!(serve, talk);
        assert!(result.is_ok());
        assert_eq!(&reply, b"$3\r\nabc\r\n");
    }

    #[tokio::test]
    async fn shutdown_closes_an_idle_connection() {
        let backend = FakeBackend::new();
        let (mut client, server) = duplex(1 << 16);
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let serve = run(
            server,
            &backend,
            Session::new(1, None, None),
            FrameLimits::default(),
            None,
            shutdown_rx,
            ClientAccount::untracked(Arc::new(ClientLimits::default())),
        );
        let talk = async {
            client.write_all(b"PING\r\n").await.expect("pipe open");
            let mut reply = [0u8; 7];
            client.read_exact(&mut reply).await.expect("reply");
            shutdown_tx.send(true).expect("server listening");
            let mut rest = Vec::new();
            client.read_to_end(&mut rest).await.expect("closed cleanly");
            (reply, rest)
        };
        let (result, (reply, rest)) = tokio::join!(serve, talk);
        assert!(result.is_ok());
        assert_eq!(&reply, b"+PONG\r\n");
        assert!(rest.is_empty());
    }

    /// Limits with `output` as `client-output-buffer-limit` and `timeout`.
    fn limits_with(output: &str, idle_timeout_seconds: u64) -> Arc<ClientLimits> {
        let limits = Arc::new(ClientLimits::default());
        let mut settings = limits.settings();
        settings.output = settings.output.with(output).expect("valid limit");
        settings.idle_timeout_seconds = idle_timeout_seconds;
        settings.query_buffer_limit_bytes = 1 << 20;
        limits.set(settings);
        limits
    }

    /// `SET k <value>` as a multibulk request.
    fn set_request(value_bytes: usize) -> Vec<u8> {
        let mut request = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${value_bytes}\r\n").into_bytes();
        request.extend(std::iter::repeat_n(b'x', value_bytes));
        request.extend_from_slice(b"\r\n");
        request
    }

    const BIG_BYTES: usize = 256 * 1024;

    /// A client that pipelines GETs of a big value and never reads is closed
    /// once its pending replies reach the hard limit, and counted.
    #[tokio::test]
    async fn a_client_past_the_hard_output_limit_is_closed_and_counted() {
        let backend = FakeBackend::new();
        let limits = limits_with("normal 1mb 0 0", 0);
        let (mut client, server) = duplex(64 * 1024);
        let (_shutdown_tx, shutdown_rx) = watch::channel(false);
        let serve = run(
            server,
            &backend,
            Session::new(1, None, None),
            FrameLimits::default(),
            None,
            shutdown_rx,
            ClientAccount::untracked(limits.clone()),
        );
        let talk = async {
            client
                .write_all(&set_request(BIG_BYTES))
                .await
                .expect("pipe open");
            client
                .write_all(&b"GET k\r\n".repeat(20))
                .await
                .expect("pipe open");
        };
        let (result, ()) = tokio::join!(serve, talk);
        assert!(result.is_ok());
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.expect("closed");
        assert!(
            got.len() < 20 * BIG_BYTES / 2,
            "closed early: {}",
            got.len()
        );
        assert_eq!(
            limits
                .stats
                .output_limit_disconnections
                .load(Ordering::Relaxed),
            1
        );
    }

    /// Over the soft limit, the client is closed only after soft-seconds
    /// (virtual time: the clock is paused and jumps to the next timer).
    #[tokio::test(start_paused = true)]
    async fn a_client_over_the_soft_limit_for_soft_seconds_is_closed() {
        let backend = FakeBackend::new();
        let limits = limits_with("normal 0 512kb 2", 0);
        let (mut client, server) = duplex(64 * 1024);
        let (_shutdown_tx, shutdown_rx) = watch::channel(false);
        let started = Instant::now();
        let serve = run(
            server,
            &backend,
            Session::new(1, None, None),
            FrameLimits::default(),
            None,
            shutdown_rx,
            ClientAccount::untracked(limits.clone()),
        );
        let talk = async {
            client
                .write_all(&set_request(BIG_BYTES))
                .await
                .expect("pipe open");
            client
                .write_all(&b"GET k\r\n".repeat(4))
                .await
                .expect("pipe open");
        };
        let (result, ()) = tokio::join!(serve, talk);
        assert!(result.is_ok());
        assert!(started.elapsed() > Duration::from_secs(2));
        assert_eq!(
            limits
                .stats
                .output_limit_disconnections
                .load(Ordering::Relaxed),
            1
        );
    }

    /// With no output limit, a client that does not read stops the
    /// connection at the back-pressure bound (its buffers stay small), and it
    /// still gets every reply, in order, once it reads.
    #[tokio::test]
    async fn a_slow_reader_without_limits_is_held_back_not_buffered() {
        const GETS: usize = 100;
        let backend = FakeBackend::new();
        let limits = limits_with("normal 0 0 0", 0);
        let slot = Some(limits.track(1));
        let (mut client, server) = duplex(64 * 1024);
        let (_shutdown_tx, shutdown_rx) = watch::channel(false);
        let serve = run(
            server,
            &backend,
            Session::new(1, None, None),
            FrameLimits::default(),
            None,
            shutdown_rx,
            ClientAccount {
                limits: limits.clone(),
                slot,
            },
        );
        let talk = async {
            client
                .write_all(&set_request(BIG_BYTES))
                .await
                .expect("pipe open");
            client
                .write_all(&b"GET k\r\n".repeat(GETS))
                .await
                .expect("pipe open");
            let mut most_held = 0;
            for _ in 0..50 {
                tokio::task::yield_now().await;
                most_held = most_held.max(limits.total_bytes());
            }
            assert!(most_held > 0, "the connection accounted its buffers");
            assert!(
                most_held < 4 << 20,
                "held {most_held} bytes for {} bytes of replies",
                GETS * BIG_BYTES
            );
            client.shutdown().await.expect("pipe open");
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.expect("closed");
            got
        };
        let (result, got) = tokio::join!(serve, talk);
        assert!(result.is_ok());
        let reply = format!("${BIG_BYTES}\r\n{}\r\n", "x".repeat(BIG_BYTES));
        let mut expected = b"+OK\r\n".to_vec();
        for _ in 0..GETS {
            expected.extend_from_slice(reply.as_bytes());
        }
        assert!(got == expected, "got {} bytes", got.len());
        assert_eq!(limits.total_bytes(), 0, "freed when the connection ended");
    }

    /// `timeout`: a client idle that long is closed; one that keeps talking
    /// is not.
    #[tokio::test(start_paused = true)]
    async fn an_idle_client_is_closed_after_timeout_seconds() {
        let backend = FakeBackend::new();
        let limits = limits_with("normal 0 0 0", 5);
        let (mut client, server) = duplex(64 * 1024);
        let (_shutdown_tx, shutdown_rx) = watch::channel(false);
        let started = Instant::now();
        let serve = run(
            server,
            &backend,
            Session::new(1, None, None),
            FrameLimits::default(),
            None,
            shutdown_rx,
            ClientAccount::untracked(limits.clone()),
        );
        let talk = async {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_secs(4)).await;
                client.write_all(b"PING\r\n").await.expect("pipe open");
                let mut pong = [0u8; 7];
                client.read_exact(&mut pong).await.expect("still open");
            }
            let mut rest = Vec::new();
            client.read_to_end(&mut rest).await.expect("closed");
            rest
        };
        let (result, rest) = tokio::join!(serve, talk);
        assert!(result.is_ok());
        assert!(rest.is_empty());
        assert!(started.elapsed() >= Duration::from_secs(17));
        assert_eq!(limits.stats.idle_disconnections.load(Ordering::Relaxed), 1);
    }

    /// A request whose unparsed bytes pass `client-query-buffer-limit`
    /// closes the connection, as Redis does.
    #[tokio::test]
    async fn a_query_buffer_past_its_limit_closes_the_client() {
        let backend = FakeBackend::new();
        let limits = limits_with("normal 0 0 0", 0);
        let (mut client, server) = duplex(64 * 1024);
        let (_shutdown_tx, shutdown_rx) = watch::channel(false);
        let serve = run(
            server,
            &backend,
            Session::new(1, None, None),
            FrameLimits::default(),
            None,
            shutdown_rx,
            ClientAccount::untracked(limits.clone()),
        );
        let talk = async {
            let mut request = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3000000\r\n".to_vec();
            request.extend(std::iter::repeat_n(b'x', 1_500_000));
            // The server closes mid-request: the write may fail.
            let _ = client.write_all(&request).await;
            let mut rest = Vec::new();
            let _ = client.read_to_end(&mut rest).await;
            rest
        };
        let (result, rest) = tokio::join!(serve, talk);
        assert!(result.is_ok());
        assert!(rest.is_empty());
        assert_eq!(
            limits
                .stats
                .query_limit_disconnections
                .load(Ordering::Relaxed),
            1
        );
    }
}
