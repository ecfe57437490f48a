//! Key-space commands: every one is interpreted by `kv` (one implementation
//! for the log, for reads, and inside MULTI). A write becomes `Op::Exec` with
//! the client's arguments and the selected database; a read runs
//! `Db::query` on the local map after the read barrier, at the read's "now".

use bytes::Bytes;

use crate::kv::Op;
use crate::server::command::{Action, CommandError, Env, Session};
use crate::server::reply::Reply;

/// A write: proposed as one log entry.
pub fn kv_write(
    session: &mut Session,
    _: &dyn Env,
    args: &[Bytes],
) -> Result<Action, CommandError> {
    Ok(Action::Write(Op::Exec {
        db: session.db,
        args: args.to_vec(),
    }))
}

/// A read: run on the map once the read index is applied.
pub fn kv_read(session: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    let args = args.to_vec();
    let db = session.db;
    // RANDOMKEY / HRANDFIELD: reads are local, so their randomness may be too.
    let seed: u64 = rand::random();
    Ok(Action::Read(Box::new(move |map, ctx| {
        Reply::from(map.query(db, &args, ctx.now_ms, seed))
    })))
}

#[cfg(test)]
mod tests {
    use crate::kv;
    use crate::server::command::Handler;
    use crate::server::commands::COMMANDS;

    /// Every interpreter command has a row routed the same way, with the same
    /// arity, and vice versa for the data rows.
    #[test]
    fn server_table_agrees_with_the_interpreter() {
        for (name, arity) in kv::command_names() {
            if ["select", "ping", "echo", "config"].contains(&name) {
                continue; // connection-level rows outside MULTI
            }
            let row = COMMANDS
                .iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("{name} has no server row"));
            assert_eq!(row.arity, arity, "{name}");
            let handler = row.handler as *const ();
            let write = handler == super::kv_write as Handler as *const ();
            let read = handler == super::kv_read as Handler as *const ();
            match kv::command_kind(name.as_bytes()) {
                Some(kv::CommandKind::Write) => assert!(write, "{name} must be a write"),
                Some(kv::CommandKind::Read) => assert!(read, "{name} must be a read"),
                None => unreachable!(),
            }
        }
    }
}
