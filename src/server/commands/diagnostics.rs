//! SLOWLOG, LATENCY and MONITOR: the node's own diagnostics, read from
//! [`crate::server::stats`]. Every reply describes this node only (as a
//! Redis server describes itself); see the README's observability section.

use bytes::Bytes;

use super::connection::help;
use crate::server::command::{Action, CommandError, Env, Session};
use crate::server::reply::Reply;
use crate::server::stats::{latency, Stats};

/// The node's statistics, or the error an environment without them gets.
fn stats(env: &dyn Env) -> Result<&std::sync::Arc<Stats>, CommandError> {
    env.stats()
        .ok_or_else(|| CommandError::Data("ERR statistics need a node".to_string()))
}

// ---- SLOWLOG ---------------------------------------------------------------

/// `SLOWLOG GET [count]`: the newest `count` entries (10 by default, -1
/// for all).
pub fn slowlog_get(_: &mut Session, env: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    let stats = stats(env)?;
    let count = match args.get(2) {
        None => Some(10),
        Some(arg) => {
            let refused = || {
                CommandError::Data("ERR count should be greater than or equal to -1".to_string())
            };
            match crate::server::command::parse_i64(arg).ok_or_else(refused)? {
                -1 => None,
                n if n < -1 => return Err(refused()),
                n => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            }
        }
    };
    Ok(Action::Reply(Reply::Array(
        stats
            .slowlog
            .newest(count)
            .iter()
            .map(|entry| entry.reply())
            .collect(),
    )))
}

pub fn slowlog_len(_: &mut Session, env: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    Ok(Action::Reply(Reply::Integer(
        stats(env)?.slowlog.len() as i64
    )))
}

pub fn slowlog_reset(_: &mut Session, env: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    stats(env)?.slowlog.reset();
    Ok(Action::Reply(Reply::OK))
}

pub fn slowlog_help(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    help(&[
        "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GET [<count>]",
        "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
        "    Entries are made of:",
        "    id, timestamp, time in microseconds, arguments array, client IP and port,",
        "    client name",
        "LEN",
        "    Return the length of the slowlog.",
        "RESET",
        "    Reset the slowlog.",
        "HELP",
        "    Print this help.",
    ])
}

// ---- LATENCY ---------------------------------------------------------------

pub fn latency_latest(_: &mut Session, env: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    Ok(Action::Reply(Reply::Array(
        stats(env)?
            .latency
            .latest()
            .into_iter()
            .map(|(event, at, ms, max)| {
                Reply::Array(vec![
                    Reply::bulk_str(event),
                    Reply::Integer(at),
                    Reply::Integer(i64::try_from(ms).unwrap_or(i64::MAX)),
                    Reply::Integer(i64::try_from(max).unwrap_or(i64::MAX)),
                ])
            })
            .collect(),
    )))
}

pub fn latency_history(
    _: &mut Session,
    env: &dyn Env,
    args: &[Bytes],
) -> Result<Action, CommandError> {
    let samples = stats(env)?
        .latency
        .series(&args[2])
        .map(|(_, series)| {
            series
                .samples
                .iter()
                .map(|(at, ms)| {
                    Reply::Array(vec![
                        Reply::Integer(*at),
                        Reply::Integer(i64::try_from(*ms).unwrap_or(i64::MAX)),
                    ])
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Action::Reply(Reply::Array(samples)))
}

pub fn latency_graph(
    _: &mut Session,
    env: &dyn Env,
    args: &[Bytes],
) -> Result<Action, CommandError> {
    let Some((event, series)) = stats(env)?.latency.series(&args[2]) else {
        return Err(CommandError::Data(format!(
            "ERR No samples available for event '{}'",
            String::from_utf8_lossy(&args[2])
        )));
    };
    let now = crate::server::stats::slowlog::unix_secs();
    Ok(Action::Reply(Reply::Verbatim(latency::graph(
        event, &series, now,
    ))))
}

pub fn latency_doctor(_: &mut Session, env: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    let stats = stats(env)?;
    let now = crate::server::stats::slowlog::unix_secs();
    Ok(Action::Reply(Reply::Verbatim(latency::doctor(
        &stats.latency,
        stats.slowlog.slower_than_usec(),
        now,
    ))))
}

pub fn latency_reset(
    _: &mut Session,
    env: &dyn Env,
    args: &[Bytes],
) -> Result<Action, CommandError> {
    let names: Vec<&[u8]> = args[2..].iter().map(|a| &a[..]).collect();
    Ok(Action::Reply(Reply::Integer(
        stats(env)?.latency.reset(&names) as i64,
    )))
}

/// `LATENCY HISTOGRAM [command ...]`: per command, its calls and the
/// cumulative count at each power-of-two microsecond bound.
pub fn latency_histogram(
    _: &mut Session,
    env: &dyn Env,
    args: &[Bytes],
) -> Result<Action, CommandError> {
    let stats = stats(env)?;
    let histograms = if args.len() == 2 {
        stats.histograms().collect()
    } else {
        stats.histograms_of(&args[2..])
    };
    Ok(Action::Reply(Reply::Map(
        histograms
            .into_iter()
            .map(|(name, histogram)| {
                let buckets = histogram
                    .cumulative_powers_of_two()
                    .into_iter()
                    .map(|(bound, count)| {
                        (
                            Reply::Integer(i64::try_from(bound).unwrap_or(i64::MAX)),
                            Reply::Integer(i64::try_from(count).unwrap_or(i64::MAX)),
                        )
                    })
                    .collect();
                (
                    Reply::bulk_str(name),
                    Reply::Map(vec![
                        (
                            Reply::bulk_str("calls"),
                            Reply::Integer(i64::try_from(histogram.total()).unwrap_or(i64::MAX)),
                        ),
                        (Reply::bulk_str("histogram_usec"), Reply::Map(buckets)),
                    ]),
                )
            })
            .collect(),
    )))
}

pub fn latency_help(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    help(&[
        "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "DOCTOR",
        "    Return a human readable latency analysis report.",
        "GRAPH <event>",
        "    Return an ASCII latency graph for the <event> class.",
        "HISTORY <event>",
        "    Return time-latency samples for the <event> class.",
        "LATEST",
        "    Return the latest latency samples for all events.",
        "RESET [<event> ...]",
        "    Reset latency data of one or more <event> classes.",
        "    (default: reset all data for all event classes)",
        "HISTOGRAM [COMMAND ...]",
        "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
        "    If no commands are specified then all histograms are replied.",
        "HELP",
        "    Print this help.",
    ])
}

// ---- MONITOR ---------------------------------------------------------------

/// `MONITOR`: refused inside MULTI (Redis's `no-multi`, which also aborts
/// the transaction); otherwise the connection attaches to the feed.
pub fn monitor(session: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    refuse_in_multi(session)?;
    Ok(Action::Monitor)
}

/// Redis's `no-multi`: a command that cannot be queued is refused, and the
/// transaction fails at EXEC (`EXECABORT`). Its row carries `NO_QUEUE` so the
/// handler sees it while the transaction is open.
pub(crate) fn refuse_in_multi(session: &mut Session) -> Result<(), CommandError> {
    if session.multi.is_some() {
        session.multi_error = true;
        return Err(CommandError::Data(
            "ERR Command not allowed inside a transaction".to_string(),
        ));
    }
    Ok(())
}
