//! `SAVE`, `BGSAVE`, `BGREWRITEAOF` and `SHUTDOWN`.
//!
//! dkv's durability does not depend on them: every acknowledged write is
//! already fsynced in the WAL of a majority. What Redis's RDB file is, dkv's
//! snapshot is, and what rewriting Redis's AOF does (a compact file instead
//! of a long log), a snapshot does too: the WAL before it is deleted. So all
//! three ask this node for a snapshot of its map now (the node's own, as
//! Redis's is one server's; each node also snapshots by itself every
//! `raft.snapshot_every_entries` entries). `SAVE` answers once the snapshot
//! is durable; the others once it has started. One snapshot is written at a
//! time, and Redis's texts say so when one is running.
//!
//! `SHUTDOWN` stops the process as SIGTERM does: a leader hands leadership to
//! another voter first (unless `NOW`), then the node stops; `SAVE` writes a
//! snapshot before that. The client gets no reply, as from Redis: the
//! connection closes when the process exits.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

use super::diagnostics::refuse_in_multi;
use crate::node::SnapshotStart;
use crate::server::command::{Action, CommandError, Env, Session};
use crate::server::reply::Reply;

/// The node's answer to a snapshot asked for (None: the node is stopping).
pub type SnapshotJob = Pin<Box<dyn Future<Output = Option<SnapshotStart>> + Send>>;

/// Which command asked for the snapshot (their replies differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Asker {
    Save,
    Bgsave,
    Bgrewriteaof,
}

/// A snapshot asked for, to be answered once the node replies.
pub struct SnapshotAsk {
    asker: Asker,
    job: SnapshotJob,
}

impl std::fmt::Debug for SnapshotAsk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotAsk")
            .field("asker", &self.asker)
            .finish_non_exhaustive()
    }
}

impl SnapshotAsk {
    /// Waits for the node's answer (SAVE: for the snapshot to be durable)
    /// and gives Redis's reply for it.
    pub async fn run(self) -> Reply {
        let Some(start) = self.job.await else {
            return Reply::error("ERR the node is shutting down");
        };
        reply_for(self.asker, start).await
    }
}

async fn reply_for(asker: Asker, start: SnapshotStart) -> Reply {
    match (asker, start) {
        (Asker::Save, SnapshotStart::Started(done)) => match done.await {
            Ok(()) => Reply::OK,
            Err(_) => Reply::error("ERR the snapshot could not be written (see the node's log)"),
        },
        (Asker::Save, SnapshotStart::Current) => Reply::OK,
        // SAVE never schedules; BGSAVE only with SCHEDULE.
        (Asker::Save, SnapshotStart::InProgress { .. })
        | (Asker::Bgsave, SnapshotStart::InProgress { scheduled: false }) => {
            Reply::error("ERR Background save already in progress")
        }
        (Asker::Bgsave, SnapshotStart::InProgress { scheduled: true }) => {
            Reply::Simple("Background saving scheduled")
        }
        (Asker::Bgsave, SnapshotStart::Started(_) | SnapshotStart::Current) => {
            Reply::Simple("Background saving started")
        }
        (Asker::Bgrewriteaof, SnapshotStart::InProgress { .. }) => {
            Reply::Simple("Background append only file rewriting scheduled")
        }
        (Asker::Bgrewriteaof, SnapshotStart::Started(_) | SnapshotStart::Current) => {
            Reply::Simple("Background append only file rewriting started")
        }
    }
}

fn ask(env: &dyn Env, asker: Asker, schedule: bool) -> Result<Action, CommandError> {
    let job = env
        .snapshot_now(schedule)
        .ok_or_else(|| CommandError::err("this node cannot write snapshots (no data directory)"))?;
    Ok(Action::Snapshot(SnapshotAsk { asker, job }))
}

/// `SAVE`: a snapshot now, answered once it is durable.
pub fn save(session: &mut Session, env: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    refuse_in_multi(session)?;
    ask(env, Asker::Save, false)
}

/// `BGSAVE [SCHEDULE]`: a snapshot started now (or, with `SCHEDULE`, after
/// the one being written).
pub fn bgsave(_: &mut Session, env: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    let schedule = match &args[1..] {
        [] => false,
        [option] if option.eq_ignore_ascii_case(b"schedule") => true,
        _ => return Err(CommandError::Syntax),
    };
    ask(env, Asker::Bgsave, schedule)
}

/// `BGREWRITEAOF`: compacting the log is a snapshot; one asked while another
/// is written follows it (Redis schedules its rewrite after a running save).
pub fn bgrewriteaof(_: &mut Session, env: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    ask(env, Asker::Bgrewriteaof, true)
}

/// How `SHUTDOWN` stops the process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shutdown {
    /// `NOW`: do not hand leadership over first.
    pub now: bool,
    /// `SAVE`: write a snapshot before stopping.
    pub save: bool,
}

/// `SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]`, with Redis's checks.
/// `FORCE` is accepted: nothing here can fail in a way it would override.
/// A shutdown, once asked, cannot be aborted in dkv.
pub fn shutdown(
    session: &mut Session,
    env: &dyn Env,
    args: &[Bytes],
) -> Result<Action, CommandError> {
    refuse_in_multi(session)?;
    let (mut how, mut nosave, mut abort, mut other) = (Shutdown::default(), false, false, false);
    for arg in &args[1..] {
        match arg.to_ascii_lowercase().as_slice() {
            b"nosave" => nosave = true,
            b"save" => how.save = true,
            b"now" => how.now = true,
            b"force" => {}
            b"abort" => abort = true,
            _ => return Err(CommandError::Syntax),
        }
        other |= !arg.eq_ignore_ascii_case(b"abort");
    }
    if (abort && other) || (nosave && how.save) {
        return Err(CommandError::Syntax);
    }
    if abort {
        return Err(CommandError::err("No shutdown in progress."));
    }
    if env.request_shutdown(how) {
        Ok(Action::Shutdown)
    } else {
        Err(CommandError::err("Errors trying to SHUTDOWN. Check logs."))
    }
}
