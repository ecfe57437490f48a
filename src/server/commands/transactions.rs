//! MULTI / EXEC / DISCARD / WATCH / UNWATCH.
//!
//! Queued commands that touch the key space (every `kv` command, plus
//! SELECT/PING/ECHO/CONFIG SET) go into ONE log entry, `Op::Multi`, applied
//! atomically at its log position — reads inside the transaction included, so
//! they see exactly the state the writes before them produced. WATCH takes a
//! linearizable read of each key's version; the EXEC entry carries them and
//! apply answers a nil array if any changed. Connection and introspection
//! commands in the queue (CLIENT, INFO, HELLO ...) run locally after the entry
//! applies, their replies merged in order.
//!
//! ```text
//! client: WATCH k ─ read index ─ token(k)   MULTI  SET..  GET..  EXEC
//! log:                                                          [Multi{cmds, tokens}]
//! apply:                                 tokens unchanged? run all : nil array
//! ```

use bytes::Bytes;

use super::connection::parse_db_index;
use crate::cmd::Kind;
use crate::kv::{self, Op, Output};
use crate::server::command::{
    dispatch, key_space_check, lookup, Action, Backend, CommandError, Env, Queued, ReadWith,
    Session,
};
use crate::server::reply::Reply;

pub fn multi(session: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    if session.multi.is_some() {
        return Err(CommandError::NestedMulti);
    }
    session.multi = Some(Vec::new());
    session.multi_error = false;
    session.multi_bytes = 0;
    session.multi_db = session.db;
    Ok(Action::Reply(Reply::OK))
}

pub fn exec_command(
    session: &mut Session,
    _: &dyn Env,
    args: &[Bytes],
) -> Result<Action, CommandError> {
    if session.multi.is_none() {
        return Err(CommandError::ExecWithoutMulti);
    }
    Ok(Action::Exec(args[0].clone()))
}

pub fn discard(session: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    if session.multi.is_none() {
        return Err(CommandError::DiscardWithoutMulti);
    }
    session.discard_transaction();
    Ok(Action::Reply(Reply::OK))
}

pub fn watch_command(
    session: &mut Session,
    _: &dyn Env,
    args: &[Bytes],
) -> Result<Action, CommandError> {
    if session.multi.is_some() {
        return Err(CommandError::WatchInsideMulti);
    }
    Ok(Action::Watch(args[1..].to_vec()))
}

pub fn unwatch(session: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    session.watched.clear();
    Ok(Action::Reply(Reply::OK))
}

/// True if the command runs inside the EXEC log entry.
fn in_log(args: &[Bytes]) -> bool {
    let name = &args[0];
    if name.eq_ignore_ascii_case(b"config") {
        // `requirepass` is an ACL change, carried out after the entry.
        return args.get(1).is_some_and(|s| s.eq_ignore_ascii_case(b"set"))
            && !args
                .get(2)
                .is_some_and(|p| p.eq_ignore_ascii_case(b"requirepass"));
    }
    lookup(name).is_some_and(|(_, spec)| spec.is_data())
}

/// Most commands one transaction may queue. Redis has no such limit; dkv
/// bounds every per-connection buffer (STYLE.md §2). The whole EXEC is one
/// log entry, so it must also fit `raft.max_bytes_per_append`.
pub const MAX_QUEUED_COMMANDS: usize = 100_000;
/// Most argument bytes one transaction may queue.
pub const MAX_QUEUED_BYTES: usize = 64 * 1024 * 1024;

/// Queues a command that passed the queue-time checks.
///
/// # Errors
/// [`CommandError::MultiQueueFull`] past [`MAX_QUEUED_COMMANDS`] or
/// [`MAX_QUEUED_BYTES`]: the command is not queued, and the caller marks
/// the transaction failed (EXEC answers EXECABORT, as for any queuing error).
pub fn queue(session: &mut Session, args: &[Bytes]) -> Result<(), CommandError> {
    let bytes: usize = args.iter().map(Bytes::len).sum();
    let queued = session.multi.as_ref().map_or(0, Vec::len);
    if queued >= MAX_QUEUED_COMMANDS || session.multi_bytes.saturating_add(bytes) > MAX_QUEUED_BYTES
    {
        return Err(CommandError::MultiQueueFull {
            max_commands: MAX_QUEUED_COMMANDS,
            max_bytes: MAX_QUEUED_BYTES,
        });
    }
    session.multi_bytes += bytes;
    let db = session.multi_db;
    if args[0].eq_ignore_ascii_case(b"select") {
        if let Ok(next) = parse_db_index(&args[1]) {
            session.multi_db = next;
        }
    }
    if let Some(queue) = session.multi.as_mut() {
        queue.push(Queued {
            db,
            args: args.to_vec(),
            in_log: in_log(args),
        });
    }
    Ok(())
}

/// `WATCH`: one linearizable read for the tokens of all the keys.
pub async fn watch<B: Backend>(backend: &B, session: &mut Session, keys: Vec<Bytes>) -> Reply {
    let db = session.db;
    let read: ReadWith<Vec<kv::WatchToken>> = Box::new(move |map, ctx| {
        keys.into_iter()
            .map(|k| map.watch_token(db, k, ctx.now_ms))
            .collect()
    });
    let tokens = if session.readonly {
        backend.read_local(read)
    } else {
        backend.read(read).await
    };
    match tokens {
        Ok(tokens) => {
            session.watched.extend(tokens);
            Reply::OK
        }
        Err(e) => CommandError::from(e).into(),
    }
}

/// True for the (un)subscribe commands, which a connection carries out
/// itself (`connection.rs`), also when EXEC runs them.
pub fn is_subscription(name: &[u8]) -> bool {
    [
        &b"subscribe"[..],
        b"unsubscribe",
        b"psubscribe",
        b"punsubscribe",
        b"ssubscribe",
        b"sunsubscribe",
    ]
    .iter()
    .any(|known| name.eq_ignore_ascii_case(known))
}

/// Takes the queued (un)subscribes out of the transaction: the number of
/// commands queued and, for each (un)subscribe, its place among them and
/// its arguments. Empty when there are none (or no transaction).
pub fn take_subscriptions(session: &mut Session) -> (usize, Vec<(usize, Vec<Bytes>)>) {
    let Some(queue) = session.multi.as_mut() else {
        return (0, Vec::new());
    };
    let total = queue.len();
    if !queue.iter().any(|q| is_subscription(&q.args[0])) {
        return (total, Vec::new());
    }
    let mut taken = Vec::new();
    let mut at = 0;
    queue.retain(|q| {
        let keep = !is_subscription(&q.args[0]);
        if !keep {
            taken.push((at, q.args.clone()));
        }
        at += 1;
        keep
    });
    (total, taken)
}

/// `EXEC`: one log entry for the queued key-space commands (if any, or if
/// keys are watched), then the local ones; replies in queue order. As in
/// Redis 7.0, each queued command counts as a call (INFO commandstats,
/// `total_commands_processed`) and is shown to MONITOR now, when it runs,
/// and EXEC after them; their time is counted in EXEC's own.
pub async fn exec<B: Backend>(backend: &B, session: &mut Session, name: Bytes) -> Reply {
    let reply = run_exec(backend, session).await;
    if let Some((stats, (_, spec))) = backend.stats().zip(lookup(b"exec")) {
        stats.monitors.feed(spec, session, &[name]);
    }
    reply
}

/// Counts one queued command that EXEC ran, and shows it to MONITOR.
fn account_queued<B: Backend>(backend: &B, session: &Session, args: &[Bytes], reply: &Reply) {
    let Some(stats) = backend.stats() else {
        return;
    };
    let Some((index, spec)) = lookup(&args[0]) else {
        return;
    };
    stats.record(
        &crate::server::stats::Finished {
            command: Some(index),
            args,
            reply,
            rejected: false,
            usec: 0,
            superseded: false,
        },
        session,
    );
    stats.monitors.feed(spec, session, args);
}

async fn run_exec<B: Backend>(backend: &B, session: &mut Session) -> Reply {
    let queued = session.multi.take().unwrap_or_default();
    session.multi_bytes = 0;
    let aborted = std::mem::take(&mut session.multi_error);
    let watched = std::mem::take(&mut session.watched);
    if aborted {
        return CommandError::ExecAbort.into();
    }
    // Each key-space command's check runs now, as it would outside MULTI: a
    // command that fails it is answered in its place and left out of the
    // entry (Redis reports such errors inside EXEC's reply, and a command
    // that fails its parse changes nothing, so leaving it out is the same).
    let refused: Vec<Option<Reply>> = queued
        .iter()
        .map(|q| {
            let spec = q.in_log.then(|| lookup(&q.args[0])).flatten()?.1;
            match spec.kind {
                Kind::Read { check, .. } | Kind::Write { check, .. } => {
                    key_space_check(backend, session, spec, check, &q.args)
                        .err()
                        .map(Reply::from)
                }
                Kind::Server(_) => None,
            }
        })
        .collect();
    let commands: Vec<(u8, Vec<Bytes>)> = queued
        .iter()
        .zip(&refused)
        .filter(|(q, refused)| q.in_log && refused.is_none())
        .map(|(q, _)| (q.db, q.args.clone()))
        .collect();
    let mut outputs = if commands.is_empty() && watched.is_empty() {
        Vec::new()
    } else {
        let scripts = commands
            .iter()
            .any(|(_, args)| crate::kv::runs_script(args));
        let op = Op::Multi { commands, watched };
        // A queued script's redis.calls are checked against the caller.
        let op = if scripts {
            Op::AsUser {
                user: String::from_utf8_lossy(&session.user).into_owned(),
                op: Box::new(op),
            }
        } else {
            op
        };
        let op = crate::server::tracking::writer_op(session, backend, op);
        match backend.write(op).await {
            Ok(Output::Array(outputs)) => outputs,
            Ok(Output::NilArray) => return Reply::NilArray,
            Ok(other) => return other.into(),
            Err(e) => return CommandError::from(e).into(),
        }
    }
    .into_iter();
    let final_db = session.multi_db;
    let mut replies = Vec::with_capacity(queued.len());
    for (q, refused) in queued.into_iter().zip(refused) {
        if let Some(reply) = refused {
            account_queued(backend, session, &q.args, &reply);
            replies.push(reply);
            continue;
        }
        if q.in_log {
            let reply = outputs.next().map_or(Reply::Null, Reply::from);
            account_queued(backend, session, &q.args, &reply);
            replies.push(reply);
            continue;
        }
        let reply = match lookup(&q.args[0]) {
            None => crate::server::command::unknown_command(&q.args).into(),
            Some((_, spec)) => match dispatch(spec, session, backend, &q.args) {
                Err(e) => e.into(),
                // Local commands (connection, introspection, DEBUG) run
                // after the entry: every key-space command is in it.
                Ok(Action::Reply(r)) => r,
                Ok(Action::Read(f)) => {
                    let read = if session.readonly {
                        backend.read_local(f)
                    } else {
                        backend.read(f).await
                    };
                    read.unwrap_or_else(|e| CommandError::from(e).into())
                }
                // ACL changes (ACL SETUSER, CONFIG SET requirepass): their
                // own entry, after the transaction's.
                Ok(Action::Write(op)) => {
                    crate::server::command::write_reply(backend.write(op).await)
                }
                // WAIT inside MULTI answers at once, as in Redis.
                Ok(Action::Wait(_)) => super::replication::count_now(backend),
                Ok(Action::Snapshot(ask)) => ask.run().await,
                Ok(Action::Migrate(migrate)) => super::migrate::run(backend, *migrate).await,
                Ok(_) => Reply::OK,
            },
        };
        account_queued(backend, session, &q.args, &reply);
        replies.push(reply);
    }
    session.db = final_db;
    Reply::Array(replies)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::{MAX_QUEUED_BYTES, MAX_QUEUED_COMMANDS};
    use crate::server::command::fake::FakeBackend;
    use crate::server::command::{execute, Session};
    use crate::server::reply::Reply;

    fn run(backend: &FakeBackend, session: &mut Session, args: &[&[u8]]) -> Reply {
        let args: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a)).collect();
        futures_util::FutureExt::now_or_never(execute(backend, session, &args))
            .expect("the fake backend never waits")
            .reply
    }

    fn queue_full() -> Reply {
        Reply::Error(format!(
            "ERR MULTI queue is full: a transaction holds at most {MAX_QUEUED_COMMANDS} commands and {MAX_QUEUED_BYTES} bytes of arguments in dkv; EXEC will discard it"
        ))
    }

    /// A queued command that fails its own check is answered inside EXEC's
    /// reply, in its place, as Redis does, and is not part of the entry.
    #[test]
    fn exec_answers_failed_checks_in_place_and_proposes_only_the_rest() {
        let backend = FakeBackend::new();
        let mut session = Session::new(1, None, None);
        assert_eq!(run(&backend, &mut session, &[b"MULTI"]), Reply::OK);
        for args in [
            &[&b"SET"[..], b"a", b"1"][..],
            &[b"SET", b"b", b"2", b"EX", b"soon"],
            &[b"SET", b"c", b"3", b"NX", b"XX"],
            &[b"GET", b"a"],
        ] {
            assert_eq!(run(&backend, &mut session, args), Reply::Simple("QUEUED"));
        }
        assert_eq!(
            run(&backend, &mut session, &[b"EXEC"]),
            Reply::Array(vec![
                Reply::OK,
                Reply::Error("ERR value is not an integer or out of range".into()),
                Reply::Error("ERR syntax error".into()),
                Reply::bulk_str("1"),
            ])
        );
        let proposed = backend.proposed.lock().unwrap();
        let [crate::kv::Op::Multi { commands, .. }] = &proposed[..] else {
            panic!("one EXEC entry expected, got {proposed:?}");
        };
        let names: Vec<&[u8]> = commands.iter().map(|(_, args)| &args[1][..]).collect();
        assert_eq!(names, vec![&b"a"[..], b"a"]);
    }

    /// The connection carries queued (un)subscribes out itself: they leave
    /// the queue with their places, the rest stays in order.
    #[test]
    fn subscriptions_leave_the_queue_with_their_places() {
        let backend = FakeBackend::new();
        let mut session = Session::new(1, None, None);
        assert_eq!(run(&backend, &mut session, &[b"MULTI"]), Reply::OK);
        for args in [
            &[&b"SUBSCRIBE"[..], b"a", b"b"][..],
            &[b"SET", b"k", b"v"],
            &[b"punsubscribe"],
            &[b"GET", b"k"],
        ] {
            assert_eq!(run(&backend, &mut session, args), Reply::Simple("QUEUED"));
        }
        let (total, taken) = super::take_subscriptions(&mut session);
        assert_eq!(total, 4);
        let places: Vec<usize> = taken.iter().map(|(at, _)| *at).collect();
        assert_eq!(places, vec![0, 2]);
        let left: Vec<&[u8]> = session
            .multi
            .as_ref()
            .unwrap()
            .iter()
            .map(|q| &q.args[0][..])
            .collect();
        assert_eq!(left, vec![&b"SET"[..], b"GET"]);
        assert_eq!(super::take_subscriptions(&mut session).1, Vec::new());
    }

    #[test]
    fn multi_queue_is_bounded_in_commands_and_exec_aborts() {
        let backend = FakeBackend::new();
        let mut session = Session::new(1, None, None);
        assert_eq!(run(&backend, &mut session, &[b"MULTI"]), Reply::OK);
        for _ in 0..MAX_QUEUED_COMMANDS {
            assert_eq!(
                run(&backend, &mut session, &[b"INCR", b"n"]),
                Reply::Simple("QUEUED")
            );
        }
        assert_eq!(run(&backend, &mut session, &[b"INCR", b"n"]), queue_full());
        assert_eq!(
            session.multi.as_ref().map(Vec::len),
            Some(MAX_QUEUED_COMMANDS)
        );
        assert_eq!(
            run(&backend, &mut session, &[b"EXEC"]),
            Reply::Error("EXECABORT Transaction discarded because of previous errors.".into())
        );
        assert_eq!(run(&backend, &mut session, &[b"GET", b"n"]), Reply::Null);
        // The next transaction starts empty.
        assert_eq!(run(&backend, &mut session, &[b"MULTI"]), Reply::OK);
        assert_eq!(
            run(&backend, &mut session, &[b"INCR", b"n"]),
            Reply::Simple("QUEUED")
        );
        assert_eq!(
            run(&backend, &mut session, &[b"EXEC"]),
            Reply::Array(vec![Reply::Integer(1)])
        );
    }

    #[test]
    fn multi_queue_is_bounded_in_bytes() {
        let backend = FakeBackend::new();
        let mut session = Session::new(1, None, None);
        let big = vec![b'x'; MAX_QUEUED_BYTES / 4];
        assert_eq!(run(&backend, &mut session, &[b"MULTI"]), Reply::OK);
        for _ in 0..3 {
            assert_eq!(
                run(&backend, &mut session, &[b"SET", b"k", &big]),
                Reply::Simple("QUEUED")
            );
        }
        assert_eq!(
            run(&backend, &mut session, &[b"SET", b"k", &big]),
            queue_full()
        );
        assert_eq!(run(&backend, &mut session, &[b"DISCARD"]), Reply::OK);
        assert_eq!(session.multi_bytes, 0);
    }
}
