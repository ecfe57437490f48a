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

use std::io;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::codec::{FrameLimits, RequestParser};
use super::command::{
    lookup, prepare, publish, run_action, write_reply, Action, Backend, CommandCounters,
    CommandError, Executed, Flags, Prepared, ReadFn, Session,
};
use super::reply::{Protocol, Reply};
use crate::kv::Op;

/// Read buffer growth step.
const READ_CHUNK_BYTES: usize = 16 * 1024;
/// Most the read buffer is grown by at once for a pending large bulk.
const MAX_RESERVE_BYTES: usize = 1024 * 1024;
/// Output written mid-batch once it is this large, to bound memory with deep
/// pipelines (and to give back-pressure to clients that do not read).
pub const FLUSH_AT_BYTES: usize = 1024 * 1024;
/// Most requests carried out as one group.
const MAX_GROUP_REQUESTS: usize = 1024;
/// A write group is carried out once its arguments reach this size.
const MAX_GROUP_BYTES: usize = 8 * 1024 * 1024;

/// One prepared request of a group, and how to answer it.
struct Member<T> {
    item: T,
    command: usize,
    protocol: Protocol,
}

/// Requests prepared and waiting to be carried out together.
enum Group {
    Empty,
    Writes {
        members: Vec<Member<Op>>,
        bytes: usize,
    },
    Reads(Vec<Member<ReadFn>>),
}

impl Group {
    fn len(&self) -> usize {
        match self {
            Group::Empty => 0,
            Group::Writes { members, .. } => members.len(),
            Group::Reads(members) => members.len(),
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
            (spec.flags.contains(Flags::WRITE) || spec.flags.contains(Flags::READONLY))
                && !spec.flags.contains(Flags::NO_QUEUE)
        })
}

/// Serves one connection until the client closes it, sends QUIT, breaks the
/// protocol, or `shutdown` turns true.
///
/// # Errors
/// I/O errors on the stream.
pub async fn run<S, B>(
    mut stream: S,
    backend: &B,
    mut session: Session,
    limits: FrameLimits,
    counters: Option<&CommandCounters>,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    B: Backend,
{
    let mut parser = RequestParser::new(limits);
    let mut input = BytesMut::with_capacity(READ_CHUNK_BYTES);
    let mut output = BytesMut::with_capacity(READ_CHUNK_BYTES);
    let mut group = Group::Empty;
    loop {
        loop {
            match parser.next_request(&mut input) {
                Ok(Some(args)) => {
                    if !groupable(&session, &args) {
                        carry_out(backend, &session, &mut group, counters, &mut output).await;
                    }
                    let protocol = session.protocol;
                    let close = match prepare(backend, &mut session, &args) {
                        Prepared::Action {
                            action: Action::Write(op),
                            command,
                        } => {
                            if matches!(group, Group::Reads(_)) {
                                carry_out(backend, &session, &mut group, counters, &mut output)
                                    .await;
                            }
                            let size: usize = args.iter().map(Bytes::len).sum();
                            let member = Member {
                                item: op,
                                command,
                                protocol,
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
                            if matches!(group, Group::Writes { .. }) {
                                carry_out(backend, &session, &mut group, counters, &mut output)
                                    .await;
                            }
                            let member = Member {
                                item: f,
                                command,
                                protocol,
                            };
                            match &mut group {
                                Group::Reads(members) => members.push(member),
                                _ => group = Group::Reads(vec![member]),
                            }
                            false
                        }
                        Prepared::Action { action, command } => {
                            carry_out(backend, &session, &mut group, counters, &mut output).await;
                            let (reply, close) = run_action(backend, &mut session, action).await;
                            let executed = Executed {
                                reply,
                                close,
                                command: Some(command),
                            };
                            answer(executed, protocol, counters, &mut output)
                        }
                        Prepared::Done(executed) => {
                            carry_out(backend, &session, &mut group, counters, &mut output).await;
                            // After `HELLO 3` this is already RESP3, as in Redis.
                            answer(executed, session.protocol, counters, &mut output)
                        }
                    };
                    if close {
                        carry_out(backend, &session, &mut group, counters, &mut output).await;
                        return close_with(&mut stream, &output).await;
                    }
                    if group.is_full() {
                        carry_out(backend, &session, &mut group, counters, &mut output).await;
                    }
                    if output.len() >= FLUSH_AT_BYTES {
                        publish(&session);
                        stream.write_all(&output).await?;
                        output.clear();
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    carry_out(backend, &session, &mut group, counters, &mut output).await;
                    tracing::debug!(%error, "protocol error");
                    Reply::Error(error.to_string()).encode(session.protocol, &mut output);
                    return close_with(&mut stream, &output).await;
                }
            }
        }
        carry_out(backend, &session, &mut group, counters, &mut output).await;
        // Other connections' CLIENT LIST sees this one as of its last batch:
        // one uncontended lock per read, not per request.
        publish(&session);
        if !output.is_empty() {
            stream.write_all(&output).await?;
            output.clear();
        }
        if *shutdown.borrow() {
            return close_with(&mut stream, &[]).await;
        }
        let wanted = parser
            .bytes_needed(&input)
            .clamp(READ_CHUNK_BYTES, MAX_RESERVE_BYTES);
        if input.capacity() - input.len() < wanted {
            input.reserve(wanted);
        }
        let read = tokio::select! {
            read = stream.read_buf(&mut input) => read?,
            _ = shutdown.changed() => return close_with(&mut stream, &[]).await,
        };
        if read == 0 {
            return Ok(());
        }
    }
}

/// Counts a request and appends its reply; returns whether to close.
fn answer(
    executed: Executed,
    protocol: Protocol,
    counters: Option<&CommandCounters>,
    output: &mut BytesMut,
) -> bool {
    if let Some(counters) = counters {
        counters.record(&executed);
    }
    executed.reply.encode(protocol, output);
    executed.close
}

/// Carries out the waiting group (one ordered write batch, or one read
/// barrier for all its reads) and appends the replies in request order.
async fn carry_out<B: Backend>(
    backend: &B,
    session: &Session,
    group: &mut Group,
    counters: Option<&CommandCounters>,
    output: &mut BytesMut,
) {
    let (replies, answers, missing) = match std::mem::replace(group, Group::Empty) {
        Group::Empty => return,
        Group::Writes { members, .. } => {
            let (ops, answers): (Vec<Op>, Vec<(usize, Protocol)>) = members
                .into_iter()
                .map(|m| (m.item, (m.command, m.protocol)))
                .unzip();
            let replies: Vec<Reply> = backend
                .write_batch(ops)
                .await
                .into_iter()
                .map(write_reply)
                .collect();
            let missing = write_reply(Err(crate::node::RequestError::OutcomeUnknown(
                "no reply for the write".to_string(),
            )));
            (replies, answers, missing)
        }
        Group::Reads(members) => {
            let (reads, answers): (Vec<ReadFn>, Vec<(usize, Protocol)>) = members
                .into_iter()
                .map(|m| (m.item, (m.command, m.protocol)))
                .unzip();
            let all = Box::new(move |db: &crate::kv::Db, ctx| {
                reads
                    .into_iter()
                    .map(|f| f(db, ctx))
                    .collect::<Vec<Reply>>()
            });
            let result = if session.readonly {
                backend.read_local(all)
            } else {
                backend.read(all).await
            };
            let replies = match result {
                Ok(replies) => replies,
                Err(error) => answers
                    .iter()
                    .map(|_| CommandError::from(error.clone()).into())
                    .collect(),
            };
            let missing = Reply::Error("ERR no reply for the read".to_string());
            (replies, answers, missing)
        }
    };
    let mut replies = replies.into_iter();
    for (command, protocol) in answers {
        let executed = Executed {
            reply: replies.next().unwrap_or_else(|| missing.clone()),
            close: false,
            command: Some(command),
        };
        answer(executed, protocol, counters, output);
    }
}

/// Writes the last replies and closes our side.
async fn close_with<S: AsyncWrite + Unpin>(stream: &mut S, output: &[u8]) -> io::Result<()> {
    stream.write_all(output).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Poll};

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
}
