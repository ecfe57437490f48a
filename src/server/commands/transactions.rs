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
use crate::kv::{self, Op, Output};
use crate::server::command::{
    dispatch, lookup, Action, Backend, CommandError, Env, Queued, ReadWith, Session,
};
use crate::server::reply::Reply;

pub fn multi(session: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    if session.multi.is_some() {
        return Err(CommandError::NestedMulti);
    }
    session.multi = Some(Vec::new());
    session.multi_error = false;
    session.multi_db = session.db;
    Ok(Action::Reply(Reply::OK))
}

pub fn exec_command(
    session: &mut Session,
    _: &dyn Env,
    _: &[Bytes],
) -> Result<Action, CommandError> {
    if session.multi.is_none() {
        return Err(CommandError::ExecWithoutMulti);
    }
    Ok(Action::Exec)
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
        return args.get(1).is_some_and(|s| s.eq_ignore_ascii_case(b"set"));
    }
    kv::command_kind(name).is_some()
}

/// Queues a command that passed the queue-time checks.
pub fn queue(session: &mut Session, args: &[Bytes]) {
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

/// `EXEC`: one log entry for the queued key-space commands (if any, or if
/// keys are watched), then the local ones; replies in queue order.
pub async fn exec<B: Backend>(backend: &B, session: &mut Session) -> Reply {
    let queued = session.multi.take().unwrap_or_default();
    let aborted = std::mem::take(&mut session.multi_error);
    let watched = std::mem::take(&mut session.watched);
    if aborted {
        return CommandError::ExecAbort.into();
    }
    let commands: Vec<(u8, Vec<Bytes>)> = queued
        .iter()
        .filter(|q| q.in_log)
        .map(|q| (q.db, q.args.clone()))
        .collect();
    let mut outputs = if commands.is_empty() && watched.is_empty() {
        Vec::new()
    } else {
        match backend.write(Op::Multi { commands, watched }).await {
            Ok(Output::Array(outputs)) => outputs,
            Ok(Output::NilArray) => return Reply::NilArray,
            Ok(other) => return other.into(),
            Err(e) => return CommandError::from(e).into(),
        }
    }
    .into_iter();
    let final_db = session.multi_db;
    let mut replies = Vec::with_capacity(queued.len());
    for q in queued {
        if q.in_log {
            replies.push(outputs.next().map_or(Reply::Null, Reply::from));
            continue;
        }
        let reply = match lookup(&q.args[0]) {
            None => crate::server::command::unknown_command(&q.args).into(),
            Some((_, spec)) => match dispatch(spec, session, backend, &q.args) {
                Err(e) => e.into(),
                // Local commands (connection, introspection) answer at once:
                // every read or write of the key space is in the log entry.
                Ok(Action::Reply(r)) => r,
                Ok(_) => Reply::OK,
            },
        };
        replies.push(reply);
    }
    session.db = final_db;
    Reply::Array(replies)
}
