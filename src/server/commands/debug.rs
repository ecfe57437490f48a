//! `DEBUG`: the read-only subcommands that let replicas be compared.
//!
//! `DEBUG DIGEST` and `DEBUG DIGEST-VALUE key ...` are Redis's digests
//! (identical to redis-server's for the same data, see [`crate::kv::digest`]);
//! `DEBUG STATE-DIGEST` is dkv's: a digest of all replicated state, deadlines
//! and counters included. All three describe the local replica's map, read
//! like any read: after a ReadIndex barrier (so a client sees its own
//! writes), or at once on a `READONLY` connection (no leader needed).
//! Comparing the nodes of a quiet cluster (equal applied indexes) shows
//! whether they diverged. Inside MULTI, DEBUG runs after the transaction's
//! log entry (as every non-key-space command does in dkv), not in order.
//! `DEBUG SLEEP seconds` makes this connection (not the whole node, as in
//! Redis) wait before answering `+OK`: a command of known minimum duration,
//! for the slow log and latency monitor. Redis's other DEBUG subcommands
//! (crash, reload ...) are not offered.

use bytes::Bytes;

use super::connection::help;
use crate::kv::digest::hex;
use crate::server::command::{Action, CommandError, Env, Session};
use crate::server::reply::Reply;

/// Redis's `addReplySubcommandSyntaxError` text.
fn subcommand_error(args: &[Bytes]) -> Reply {
    Reply::error(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try DEBUG HELP.",
        String::from_utf8_lossy(&args[1][..args[1].len().min(128)])
    ))
}

/// The longest `DEBUG SLEEP` (a bound like every other in dkv).
const MAX_SLEEP_SECONDS: f64 = 3600.0;

pub fn debug(session: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    let sub = &args[1];
    if sub.eq_ignore_ascii_case(b"digest") && args.len() == 2 {
        return Ok(Action::Read(Box::new(|map, _| {
            Reply::Status(hex(&map.dataset_digest()))
        })));
    }
    if sub.eq_ignore_ascii_case(b"state-digest") && args.len() == 2 {
        return Ok(Action::Read(Box::new(|map, _| {
            Reply::Status(hex(&map.state_digest()))
        })));
    }
    if sub.eq_ignore_ascii_case(b"digest-value") {
        let keys = args[2..].to_vec();
        let db = usize::from(session.db);
        return Ok(Action::Read(Box::new(move |map, _| {
            Reply::Array(
                keys.iter()
                    .map(|key| Reply::Status(hex(&map.value_digest(db, key))))
                    .collect(),
            )
        })));
    }
    if sub.eq_ignore_ascii_case(b"sleep") && args.len() == 3 {
        // Redis's strtod: what does not parse sleeps 0 s.
        let seconds = std::str::from_utf8(&args[2])
            .ok()
            .and_then(|t| t.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .unwrap_or(0.0)
            .min(MAX_SLEEP_SECONDS);
        return Ok(Action::Sleep(std::time::Duration::from_secs_f64(seconds)));
    }
    if sub.eq_ignore_ascii_case(b"help") && args.len() == 2 {
        return help(&[
            "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "DIGEST",
            "    Output a hex signature representing the current DB content.",
            "DIGEST-VALUE <key> [<key> ...]",
            "    Output a hex signature of the values of all the specified keys.",
            "STATE-DIGEST",
            "    Output a hex signature of all replicated state (dkv: TTL deadlines,",
            "    counters and configuration included), to compare replicas.",
            "SLEEP <seconds>",
            "    Stop this connection for <seconds> (dkv: the node keeps serving others).",
            "HELP",
            "    Print this help.",
        ]);
    }
    Ok(Action::Reply(subcommand_error(args)))
}

#[cfg(test)]
mod tests {
    use crate::server::command::fake::FakeBackend;
    use crate::server::command::Session;
    use crate::server::reply::Reply;

    fn run(backend: &FakeBackend, session: &mut Session, line: &str) -> Reply {
        crate::server::command::fake::run_line(backend, session, line)
    }

    fn status(text: &str) -> Reply {
        Reply::Status(text.to_string())
    }

    #[test]
    fn debug_digest_replies_like_redis() {
        let backend = FakeBackend::new();
        let mut session = Session::new(1, None, None);
        let zeros = "0".repeat(40);
        assert_eq!(run(&backend, &mut session, "DEBUG DIGEST"), status(&zeros));
        assert_eq!(
            run(&backend, &mut session, "debug state-digest"),
            status(&zeros)
        );
        run(&backend, &mut session, "SET a 1");
        assert_eq!(
            run(&backend, &mut session, "DEBUG DIGEST"),
            status("943d800368fb9c0e951138f1bc0e313ac769d91f")
        );
        assert_eq!(
            run(&backend, &mut session, "DEBUG DIGEST-VALUE a nokey"),
            Reply::Array(vec![
                status("b4fc66738120fba0b5aa500ab5c2bf89cea1c5da"),
                status(&zeros)
            ])
        );
        assert_eq!(
            run(&backend, &mut session, "DEBUG DIGEST-VALUE"),
            Reply::Array(vec![])
        );
        // DIGEST-VALUE reads the selected database.
        run(&backend, &mut session, "SELECT 2");
        assert_eq!(
            run(&backend, &mut session, "DEBUG DIGEST-VALUE a"),
            Reply::Array(vec![status(&zeros)])
        );
        match run(&backend, &mut session, "DEBUG STATE-DIGEST") {
            Reply::Status(hex) => assert!(hex.len() == 40 && hex != zeros, "{hex}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn debug_errors_match_redis() {
        let backend = FakeBackend::new();
        let mut session = Session::new(1, None, None);
        assert_eq!(
            run(&backend, &mut session, "DEBUG"),
            Reply::Error("ERR wrong number of arguments for 'debug' command".into())
        );
        assert_eq!(
            run(&backend, &mut session, "DEBUG Foo"),
            Reply::Error(
                "ERR unknown subcommand or wrong number of arguments for 'Foo'. Try DEBUG HELP."
                    .into()
            )
        );
        assert_eq!(
            run(&backend, &mut session, "DEBUG digest x"),
            Reply::Error(
                "ERR unknown subcommand or wrong number of arguments for 'digest'. Try DEBUG HELP."
                    .into()
            )
        );
    }

    #[test]
    fn debug_digest_inside_multi_reads_the_local_map() {
        let backend = FakeBackend::new();
        let mut session = Session::new(1, None, None);
        run(&backend, &mut session, "MULTI");
        run(&backend, &mut session, "SET a 1");
        run(&backend, &mut session, "DEBUG DIGEST");
        assert_eq!(
            run(&backend, &mut session, "EXEC"),
            Reply::Array(vec![
                Reply::OK,
                status("943d800368fb9c0e951138f1bc0e313ac769d91f")
            ])
        );
    }
}
