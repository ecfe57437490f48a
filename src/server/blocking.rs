//! Blocking commands outside MULTI (BLPOP, BLMOVE, BZPOPMIN ...): attempt,
//! wait for a write to the keys, attempt again, until served or timed out.
//!
//! An attempt is the command itself proposed to the log: apply pops if one
//! of the keys has something (every replica pops the same element, and an
//! element is popped by one attempt only), else answers nil and changes
//! nothing. Between attempts the client waits at its own node
//! (`node::wakeups`): it is woken when apply there creates or changes one of
//! its keys — whichever leader wrote it — and attempts again if the key is
//! there in its local map. So a client blocked on a follower is served by
//! pushes sent to any node, and survives leader changes: an attempt that
//! finds no leader is retried until the timeout. An attempt of a read
//! (XREAD) changes nothing, so it is retried after an unknown outcome too
//! (the leader was lost after the attempt reached it): a client blocked in
//! XREAD on a follower does not see the leader die.
//!
//! The first attempt is always made, and so is one at the timeout: a nil
//! reply is then the outcome of an attempt in the log, so a client that
//! times out never misses an element pushed before its timeout at another
//! node (the reply may come a little after the timeout, by one write).
//!
//! What is not kept: a client that disconnects while its attempt is in
//! flight may have an element popped for it that no one receives (as in
//! Redis, where a client that dies after its pop loses the element; BLMOVE
//! to a processing list is the safe pattern).

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::command::{Backend, CommandError, CommandSpec};
use super::reply::Reply;
use crate::cmd::{Blocking, TimeoutAt};
use crate::kv::Op;
use crate::node::RequestError;

/// How long to wait before attempting again when no leader took the attempt.
const NO_LEADER_RETRY: Duration = Duration::from_millis(50);

/// A blocking command ready to run.
#[derive(Debug)]
pub struct Block {
    db: u8,
    /// The command as the client sent it: each attempt proposes it.
    args: Vec<Bytes>,
    /// The keys whose change may unblock it.
    keys: Vec<Bytes>,
    /// None: wait forever.
    timeout: Option<Duration>,
    /// The command is a read (XREAD): an attempt changes nothing, whatever
    /// its outcome.
    changes_nothing: bool,
}

impl Block {
    /// The command `args` (checked by its row) of row `spec`, in database `db`.
    ///
    /// # Errors
    /// The timeout's error text if it does not parse (the row's check has
    /// normally refused it already).
    pub fn new(
        spec: &'static CommandSpec,
        blocking: Blocking,
        db: u8,
        args: &[Bytes],
    ) -> Result<Block, CommandError> {
        let at = match blocking.timeout_at {
            TimeoutAt::Last => args.len() - 1,
            TimeoutAt::Index(i) => i,
            TimeoutAt::BlockOption => {
                crate::cmd::block_option_at(args).ok_or(CommandError::Syntax)?
            }
        };
        let timeout_ms = args.get(at).ok_or(CommandError::Syntax).and_then(|t| {
            if blocking.timeout_at == TimeoutAt::BlockOption {
                crate::kv::parse_i64(t)
                    .and_then(|ms| u64::try_from(ms).ok())
                    .ok_or(CommandError::Syntax)
            } else {
                crate::kv::blocking::parse_timeout(t).map_err(CommandError::from_output)
            }
        })?;
        let mut keys: Vec<Bytes> = spec
            .key_positions(args)
            .unwrap_or_default()
            .into_iter()
            .filter(|&i| i != at)
            .map(|i| args[i].clone())
            .collect();
        if blocking.first_key_only {
            keys.truncate(1);
        }
        keys.dedup();
        Ok(Block {
            db,
            args: args.to_vec(),
            keys,
            timeout: (timeout_ms > 0).then(|| Duration::from_millis(timeout_ms)),
            changes_nothing: !spec.is_write(),
        })
    }
}

use crate::kv::blocking::found_nothing;

/// Errors after which no attempt was applied, so another may be made.
pub(crate) fn retryable(error: &RequestError) -> bool {
    matches!(
        error,
        RequestError::NoLeader | RequestError::TryAgain(_) | RequestError::Loading
    )
}

impl Block {
    /// Its first attempt, as one command of [`Op::Pops`].
    pub fn attempt(&self) -> (u8, Vec<Bytes>) {
        (self.db, self.args.clone())
    }
}

/// Runs `block` to its reply (see the module docs).
pub async fn block<B: Backend>(backend: &B, block: Block) -> Reply {
    let Block {
        db,
        args,
        keys,
        timeout,
        changes_nothing,
    } = block;
    let deadline = timeout.map(|t| Instant::now() + t);
    // Registered before the first attempt, so no write after it is missed.
    let waiter = backend
        .key_waits()
        .map(|hub| hub.register(db, keys.clone()));
    // XREAD's `$` is the last id when the command is received: resolved
    // once, by a linearizable read, so later attempts wait for newer ids.
    let args = if crate::kv::streams::has_dollar(&args) {
        let read = backend
            .read(Box::new(move |map, ctx| {
                crate::kv::streams::resolve_dollar(map, db, &args, ctx.now_ms)
            }))
            .await;
        match read {
            Ok(args) => args,
            Err(error) => return CommandError::from(error).into(),
        }
    } else {
        args
    };
    let mut last_attempt = waiter.is_none();
    let mut attempt = true;
    loop {
        if attempt {
            match backend
                .write(Op::Exec {
                    db,
                    args: args.clone(),
                })
                .await
            {
                Ok(output) if found_nothing(&output) => {
                    if last_attempt {
                        // Redis answers every timed-out list or sorted-set
                        // pop with a nil array, BLMOVE and BRPOPLPUSH too
                        // (their non-blocking nil, in MULTI, is a nil bulk).
                        return Reply::NilArray;
                    }
                }
                Ok(output) => return Reply::from(output),
                Err(error)
                    if !last_attempt
                        && (retryable(&error)
                            || changes_nothing
                                && matches!(error, RequestError::OutcomeUnknown(_))) =>
                {
                    let retry_at = Instant::now() + NO_LEADER_RETRY;
                    match deadline {
                        Some(deadline) if deadline <= retry_at => {
                            tokio::time::sleep_until(deadline).await;
                            last_attempt = true;
                        }
                        _ => tokio::time::sleep_until(retry_at).await,
                    }
                    continue;
                }
                Err(error) => return CommandError::from(error).into(),
            }
        }
        let Some(waiter) = &waiter else {
            continue;
        };
        tokio::select! {
            () = waiter.notified() => {
                attempt = ready_here(backend, db, &keys);
            }
            () = sleep_until(deadline) => {
                last_attempt = true;
                attempt = true;
            }
        }
    }
}

/// True if one of `keys` is present (and not expired) in this node's map:
/// worth an attempt. A wrong type counts: the attempt then answers
/// WRONGTYPE, as Redis does for a blocked client whose key changes type.
fn ready_here<B: Backend>(backend: &B, db: u8, keys: &[Bytes]) -> bool {
    backend
        .read_local(|map, ctx| {
            keys.iter().any(|key| {
                map.entry(usize::from(db), key)
                    .is_some_and(|entry| !entry.is_expired(ctx.now_ms))
            })
        })
        // Loading: let the attempt report it (or wait for the leader).
        .unwrap_or(true)
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::server::command::fake::FakeBackend;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    /// A blocking "take the string at k" (GETDEL answers nil when there is
    /// nothing): the machinery does not depend on the type popped.
    fn take(key: &str, timeout: Option<Duration>) -> Block {
        Block {
            db: 0,
            args: vec![b("GETDEL"), b(key)],
            keys: vec![b(key)],
            timeout,
            changes_nothing: false,
        }
    }

    async fn set(backend: &FakeBackend, key: &str, value: &str) {
        let op = Op::Exec {
            db: 0,
            args: vec![b("SET"), b(key), b(value)],
        };
        backend.write(op).await.unwrap();
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_to_the_key_serves_the_blocked_clients_in_the_order_they_blocked() {
        let backend = Arc::new(FakeBackend::new());
        let first = tokio::spawn({
            let backend = Arc::clone(&backend);
            async move { block(&*backend, take("k", None)).await }
        });
        settle().await;
        let second = tokio::spawn({
            let backend = Arc::clone(&backend);
            async move { block(&*backend, take("k", None)).await }
        });
        settle().await;
        assert_eq!(backend.key_waits.count(), 2);
        set(&backend, "k", "one").await;
        assert_eq!(first.await.unwrap(), Reply::bulk_str("one"));
        settle().await;
        assert!(!second.is_finished(), "one element, one client served");
        set(&backend, "k", "two").await;
        assert_eq!(second.await.unwrap(), Reply::bulk_str("two"));
        assert_eq!(backend.key_waits.count(), 0);
        // Every attempt went through the log: first attempts (2), then one
        // per element, and no attempt for the second while it was not ready.
        let attempts = backend
            .proposed
            .lock()
            .unwrap()
            .iter()
            .filter(|op| matches!(op, Op::Exec { args, .. } if args[0] == "GETDEL"))
            .count();
        assert_eq!(attempts, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_answers_nil_after_a_last_attempt() {
        let backend = Arc::new(FakeBackend::new());
        let waiting = tokio::spawn({
            let backend = Arc::clone(&backend);
            async move { block(&*backend, take("k", Some(Duration::from_millis(1500)))).await }
        });
        settle().await;
        tokio::time::advance(Duration::from_millis(1499)).await;
        settle().await;
        assert!(!waiting.is_finished());
        tokio::time::advance(Duration::from_millis(2)).await;
        assert_eq!(waiting.await.unwrap(), Reply::NilArray);
        let proposed = backend.proposed.lock().unwrap().len();
        assert_eq!(proposed, 2, "the first attempt and the last one");
        assert_eq!(backend.key_waits.count(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn present_data_is_served_at_once_and_a_dropped_client_leaves_the_line() {
        let backend = Arc::new(FakeBackend::new());
        set(&backend, "k", "ready").await;
        assert_eq!(
            block(&*backend, take("k", None)).await,
            Reply::bulk_str("ready")
        );
        let gone = tokio::spawn({
            let backend = Arc::clone(&backend);
            async move { block(&*backend, take("k", None)).await }
        });
        settle().await;
        assert_eq!(backend.key_waits.count(), 1);
        gone.abort();
        let _ = gone.await;
        assert_eq!(backend.key_waits.count(), 0);
    }
}

#[cfg(test)]
mod command_tests {
    use std::sync::Arc;

    use crate::node::RequestError;

    use bytes::Bytes;

    use crate::server::command::fake::FakeBackend;
    use crate::server::command::{execute, Session};
    use crate::server::reply::Reply;

    async fn run(backend: &FakeBackend, session: &mut Session, line: &str) -> Reply {
        let args: Vec<Bytes> = line
            .split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect();
        execute(backend, session, &args).await.reply
    }

    fn bulk(s: &str) -> Reply {
        Reply::bulk_str(s)
    }

    /// BLPOP waits for a push from another client; inside MULTI it is LPOP's
    /// nil; bad timeouts are refused before anything is proposed.
    #[tokio::test(start_paused = true)]
    async fn blpop_is_served_by_a_later_push() {
        let backend = Arc::new(FakeBackend::new());
        let waiting = tokio::spawn({
            let backend = Arc::clone(&backend);
            async move {
                let mut session = Session::new(1, None, None);
                run(&backend, &mut session, "BLPOP q1 q2 0").await
            }
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(backend.key_waits.count(), 1);
        let mut other = Session::new(2, None, None);
        assert_eq!(
            run(&backend, &mut other, "RPUSH q2 a b").await,
            Reply::Integer(2)
        );
        assert_eq!(
            waiting.await.unwrap(),
            Reply::Array(vec![bulk("q2"), bulk("a")])
        );
        assert_eq!(
            run(&backend, &mut other, "LRANGE q2 0 -1").await,
            Reply::Array(vec![bulk("b")])
        );
        // Inside MULTI the attempt is all it does.
        assert_eq!(run(&backend, &mut other, "MULTI").await, Reply::OK);
        assert_eq!(
            run(&backend, &mut other, "BRPOP empty 0").await,
            Reply::Simple("QUEUED")
        );
        assert_eq!(
            run(&backend, &mut other, "EXEC").await,
            Reply::Array(vec![Reply::NilArray])
        );
        let before = backend.proposed.lock().unwrap().len();
        for (line, error) in [
            ("BLPOP q x", "ERR timeout is not a float or out of range"),
            ("BLPOP q -1", "ERR timeout is negative"),
            ("BLMOVE a b UP LEFT 0", "ERR syntax error"),
            ("BZMPOP 0 0 z MIN", "ERR numkeys should be greater than 0"),
        ] {
            assert_eq!(
                run(&backend, &mut other, line).await,
                Reply::Error(error.into()),
                "{line}"
            );
        }
        assert_eq!(backend.proposed.lock().unwrap().len(), before);
        // A timeout answers a nil array, BLMOVE's too (redis-server 7.0.15:
        // `*-1` for BLMOVE, BRPOPLPUSH, BLPOP, BZPOPMIN, BLMPOP, BZMPOP).
        assert_eq!(
            run(&backend, &mut other, "BLMOVE a b LEFT LEFT 0.5").await,
            Reply::NilArray
        );
        assert_eq!(
            run(&backend, &mut other, "BRPOPLPUSH a b 0.1").await,
            Reply::NilArray
        );
        assert_eq!(
            run(&backend, &mut other, "BZPOPMIN z 0.1").await,
            Reply::NilArray
        );
    }

    /// The leader lost after an attempt reached it (an unknown outcome): a
    /// blocked XREAD, whose attempts change nothing, attempts again and is
    /// served, as BullMQ's QueueEvents on a follower needs when the leader
    /// is killed; a blocking pop answers the unknown outcome, since its
    /// attempt may have popped.
    #[tokio::test(start_paused = true)]
    async fn xread_attempts_again_after_an_unknown_outcome_a_pop_does_not() {
        let backend = FakeBackend::new();
        let mut session = Session::new(1, None, None);
        let lost = || RequestError::OutcomeUnknown("leader lost".to_string());
        run(&backend, &mut session, "XADD s 1-1 f v").await;
        run(&backend, &mut session, "RPUSH q a").await;
        let before = *backend.proposals.lock().unwrap();
        backend.next_write_errors.lock().unwrap().push_back(lost());
        let blocked = run(&backend, &mut session, "XREAD BLOCK 0 STREAMS s 0").await;
        assert_eq!(*backend.proposals.lock().unwrap(), before + 2);
        assert_eq!(
            blocked,
            run(&backend, &mut session, "XREAD STREAMS s 0").await
        );
        assert!(!matches!(blocked, Reply::Error(_)), "{blocked:?}");

        backend.next_write_errors.lock().unwrap().push_back(lost());
        assert_eq!(
            run(&backend, &mut session, "BLPOP q 0").await,
            Reply::Error("ERR outcome unknown: leader lost".into())
        );
        assert_eq!(
            run(&backend, &mut session, "LRANGE q 0 -1").await,
            Reply::Array(vec![bulk("a")])
        );
    }
}
