//! `WAIT numreplicas timeout`: how many other members are known to hold
//! every write this client was answered for.
//!
//! In dkv a write is answered only once it is on a majority, so WAIT never
//! makes a write safer; it tells how far beyond the majority it has gone.
//! The target is the node's last log index when WAIT runs: every write the
//! client was answered for is committed, so it is in the current leader's
//! log at or before that index (other clients' later writes may be included,
//! which can only make WAIT wait a little longer, as Redis's offsets do).
//!
//! - On the leader: the followers whose log is known to match up to the
//!   target, waiting (up to `timeout` ms, 0 = until reached) for
//!   `numreplicas` of them; the wait also ends once every follower has it.
//! - On a follower, which does not see the other followers' progress: after
//!   a read barrier (so the client's writes are committed), the count it can
//!   prove, `voters / 2` — a committed entry is on a majority, and at least
//!   that many members other than this one are in every majority. It
//!   answers at once.
//! - Inside MULTI it answers at once, as Redis does.
//!
//! `ROLE` answers in Redis's shape from the same status INFO's replication
//! section reads: the Raft leader is `master` (its offset the last log
//! index, each other voter a replica at its known match index), every other
//! node `slave` of the leader it knows (state `connected`), or of none while
//! an election runs (state `connect`, host empty, port 0).
//!
//! `FAILOVER [TO host port [FORCE]] [TIMEOUT ms]` on the leader starts a Raft
//! leadership transfer (the one `dkv-cli transfer-leader` asks for) to the
//! voter whose RESP address is `host:port`, or to one of the leader's
//! choosing, and answers `+OK` at once, as Redis does; INFO shows
//! `master_failover_state:failover-in-progress` until this node sees the new
//! leader or `TIMEOUT` (default [`FAILOVER_WAIT`]) runs out. Raft hands
//! leadership only to a voter whose log holds every committed write, so
//! `FORCE` (Redis: go ahead even if the replica lags) is checked as Redis
//! checks it and changes nothing. `ABORT` cannot call a transfer back: a
//! TimeoutNow that left cannot be recalled, and Raft abandons a transfer by
//! itself within an election timeout.
//!
//! `REPLICAOF`/`SLAVEOF`: a dkv node follows whichever voter leads the Raft
//! group and cannot be pointed at another server. `REPLICAOF NO ONE` on the
//! leader answers `+OK`, as Redis answers it on a master; anything else is
//! refused, naming FAILOVER (which moves the leader). `SYNC`, `PSYNC` and
//! `REPLCONF`, the Redis replication handshake, are refused: dkv serves no
//! Redis replication stream.

use std::time::Duration;

use bytes::Bytes;

use crate::node::NodeStatus;
use crate::raft::{LogIndex, Role};
use crate::server::command::{parse_i64, Action, Backend, CommandError, Env, Session};
use crate::server::info;
use crate::server::reply::Reply;

/// How often a waiting WAIT looks at the followers' progress again.
const POLL: Duration = Duration::from_millis(5);

/// How long a FAILOVER without `TIMEOUT` waits to see the new leader.
pub const FAILOVER_WAIT: Duration = Duration::from_secs(10);

/// A parsed WAIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    /// How many members to wait for.
    pub replicas: i64,
    /// `None`: until reached.
    pub timeout: Option<Duration>,
}

/// The WAIT handler: parses, then [`Action::Wait`].
pub fn wait(_: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    let replicas = parse_i64(&args[1]).ok_or(CommandError::NotInteger)?;
    let timeout = parse_i64(&args[2]).ok_or_else(|| {
        CommandError::Data("ERR timeout is not an integer or out of range".to_string())
    })?;
    if timeout < 0 {
        return Err(CommandError::Data("ERR timeout is negative".to_string()));
    }
    Ok(Action::Wait(Wait {
        replicas,
        timeout: (timeout > 0).then(|| Duration::from_millis(timeout.unsigned_abs())),
    }))
}

/// The ROLE handler (module docs).
pub fn role(_: &mut Session, env: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    Ok(Action::Reply(role_reply(&env.status())))
}

fn role_reply(status: &NodeStatus) -> Reply {
    let offset = |index: LogIndex| i64::try_from(index.0).unwrap_or(i64::MAX);
    if status.role == Role::Leader {
        let replicas = status
            .followers
            .iter()
            .map(|f| {
                let (ip, port) = info::replica_ip_port(f);
                Reply::Array(vec![
                    Reply::bulk(ip),
                    Reply::bulk(port.to_string()),
                    Reply::bulk(f.match_index.0.to_string()),
                ])
            })
            .collect();
        return Reply::Array(vec![
            Reply::bulk_str("master"),
            Reply::Integer(offset(status.last_log_index)),
            Reply::Array(replicas),
        ]);
    }
    let (host, port) = status
        .leader
        .and(info::leader_host_port(status))
        .and_then(|(host, port)| Some((host, port.parse::<i64>().ok()?)))
        .unwrap_or(("", 0));
    let state = if port == 0 { "connect" } else { "connected" };
    Reply::Array(vec![
        Reply::bulk_str("slave"),
        Reply::bulk(host.to_string()),
        Reply::Integer(port),
        Reply::bulk_str(state),
        Reply::Integer(offset(status.last_applied)),
    ])
}

/// The FAILOVER handler (module docs); Redis 7.0's checks, in its order.
pub fn failover(_: &mut Session, env: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    let mut target: Option<(&Bytes, i64)> = None;
    let mut timeout_ms: Option<i64> = None;
    let (mut force, mut abort) = (false, false);
    let mut at = 1;
    while at < args.len() {
        let word = &args[at];
        if word.eq_ignore_ascii_case(b"to") && at + 2 < args.len() && target.is_none() {
            let port = parse_i64(&args[at + 2]).ok_or(CommandError::NotInteger)?;
            target = Some((&args[at + 1], port));
            at += 3;
        } else if word.eq_ignore_ascii_case(b"timeout")
            && at + 1 < args.len()
            && timeout_ms.is_none()
        {
            let ms = parse_i64(&args[at + 1]).ok_or(CommandError::NotInteger)?;
            if ms <= 0 {
                return Err(CommandError::err("FAILOVER timeout must be greater than 0"));
            }
            timeout_ms = Some(ms);
            at += 2;
        } else if word.eq_ignore_ascii_case(b"force") && !force {
            force = true;
            at += 1;
        } else if word.eq_ignore_ascii_case(b"abort") && !abort {
            abort = true;
            at += 1;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    if abort {
        if target.is_some() || timeout_ms.is_some() || force {
            return Err(CommandError::Syntax);
        }
        if !env.failover_running() {
            return Err(CommandError::err("No failover in progress."));
        }
        return Err(CommandError::err(
            "FAILOVER ABORT is not supported by dkv: a leadership transfer cannot be called \
             back, and Raft abandons one by itself within an election timeout",
        ));
    }
    let status = env.status();
    if status.role != Role::Leader {
        return Err(CommandError::err(
            "FAILOVER is not valid when server is a replica.",
        ));
    }
    if status.followers.is_empty() {
        return Err(CommandError::err("FAILOVER requires connected replicas."));
    }
    if force && (timeout_ms.is_none() || target.is_none()) {
        return Err(CommandError::err(
            "FAILOVER with force option requires both a timeout and target HOST and IP.",
        ));
    }
    if env.failover_running() {
        return Err(CommandError::err("FAILOVER already in progress."));
    }
    let to = match target {
        None => None,
        Some((host, port)) => {
            let named = status.followers.iter().find(|f| {
                f.resp_addr.is_some_and(|a| {
                    i64::from(a.port()) == port
                        && a.ip().to_string().as_bytes().eq_ignore_ascii_case(host)
                })
            });
            match named {
                Some(follower) => Some(follower.id),
                None => {
                    return Err(CommandError::err(
                        "FAILOVER target HOST and PORT is not a replica.",
                    ))
                }
            }
        }
    };
    let wait = timeout_ms.map_or(FAILOVER_WAIT, |ms| Duration::from_millis(ms.unsigned_abs()));
    if !env.start_failover(to, wait) {
        return Err(CommandError::err("FAILOVER already in progress."));
    }
    Ok(Action::Reply(Reply::OK))
}

/// Members other than this node known to hold everything up to `target`.
fn count(status: &NodeStatus, target: LogIndex) -> i64 {
    let known = if status.role == Role::Leader {
        status
            .followers
            .iter()
            .filter(|f| f.match_index >= target)
            .count()
    } else {
        status.voters / 2
    };
    i64::try_from(known).unwrap_or(i64::MAX)
}

/// The count now, without waiting (WAIT inside MULTI).
pub fn count_now(env: &dyn Env) -> Reply {
    let status = env.status();
    Reply::Integer(count(&status, status.last_log_index))
}

/// Runs a WAIT outside MULTI (see the module docs).
pub async fn run<B: Backend>(backend: &B, wait: Wait) -> Reply {
    let status = backend.status();
    if status.role != Role::Leader {
        // The read barrier: once it passes, the client's writes are
        // committed (on a majority).
        let barrier = backend.read(Box::new(|_, _| ())).await;
        return match barrier {
            Ok(()) => Reply::Integer(count(&backend.status(), LogIndex(0))),
            Err(e) => CommandError::from(e).into(),
        };
    }
    let target = status.last_log_index;
    let deadline = wait.timeout.map(|t| tokio::time::Instant::now() + t);
    loop {
        let status = backend.status();
        let known = count(&status, target);
        let everyone =
            status.role != Role::Leader || status.followers.iter().all(|f| f.match_index >= target);
        let expired = deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
        if known >= wait.replicas || everyone || expired {
            return Reply::Integer(known);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `REPLICAOF host port` / `SLAVEOF host port` (see the module docs).
pub fn replicaof(_: &mut Session, env: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    let no_one = args[1].eq_ignore_ascii_case(b"no") && args[2].eq_ignore_ascii_case(b"one");
    if no_one && env.status().role == Role::Leader {
        return Ok(Action::Reply(Reply::OK));
    }
    let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
    Err(CommandError::err(&format!(
        "{name} is not allowed in dkv: every node replicates the Raft leader; use FAILOVER to move the leadership"
    )))
}

/// `SYNC`, `PSYNC`, `REPLCONF` (see the module docs).
pub fn replication_handshake(
    _: &mut Session,
    _: &dyn Env,
    args: &[Bytes],
) -> Result<Action, CommandError> {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
    Err(CommandError::err(&format!(
        "{name} is not supported: dkv nodes replicate through Raft and serve no Redis replication stream"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::NodeStatus;
    use crate::raft::{NodeId, Term};

    fn status(role: Role, voters: usize, matches: &[u64]) -> NodeStatus {
        NodeStatus {
            id: NodeId(1),
            role,
            term: Term(2),
            leader: Some(NodeId(1)),
            last_leader: Some(NodeId(1)),
            leader_resp_addr: None,
            commit_index: LogIndex(10),
            last_applied: LogIndex(10),
            last_log_index: LogIndex(10),
            loading: false,
            leader_changes: 1,
            snapshot_index: LogIndex(0),
            voters,
            followers: matches
                .iter()
                .enumerate()
                .map(|(i, &m)| crate::node::FollowerStatus {
                    id: NodeId(i as u64 + 2),
                    match_index: LogIndex(m),
                    last_heard_secs: 0,
                    resp_addr: None,
                })
                .collect(),
            learners: Vec::new(),
        }
    }

    /// The leader counts followers at or past the target; a follower
    /// claims what a majority proves: one of 3, two of 5.
    #[test]
    fn counts() {
        let leader = status(Role::Leader, 3, &[10, 7]);
        assert_eq!(count(&leader, LogIndex(10)), 1);
        assert_eq!(count(&leader, LogIndex(7)), 2);
        assert_eq!(count(&leader, LogIndex(11)), 0);
        let five = status(Role::Leader, 5, &[12, 10, 3, 0]);
        assert_eq!(count(&five, LogIndex(10)), 2);
        assert_eq!(count(&status(Role::Follower, 3, &[]), LogIndex(10)), 1);
        assert_eq!(count(&status(Role::Follower, 5, &[]), LogIndex(10)), 2);
    }

    /// FAILOVER's checks give Redis 7.0's texts in Redis's order; a valid
    /// one starts one transfer, to the voter named by its RESP address.
    #[test]
    fn failover_checks_and_starts_one_transfer() {
        use crate::server::command::fake::{run_line, FakeBackend};
        use crate::server::command::Session;
        use std::time::Duration;

        let err = |text: &str| Reply::error(text);
        let leader = FakeBackend::new();
        let mut session = Session::new(1, None, None);
        let mut run = |backend: &FakeBackend, line: &str| run_line(backend, &mut session, line);
        for (line, reply) in [
            ("FAILOVER bogus", err("ERR syntax error")),
            ("FAILOVER TO 127.0.0.1", err("ERR syntax error")),
            ("FAILOVER TO h x", err("ERR value is not an integer or out of range")),
            ("FAILOVER TIMEOUT x", err("ERR value is not an integer or out of range")),
            ("FAILOVER TIMEOUT 0", err("ERR FAILOVER timeout must be greater than 0")),
            ("FAILOVER TIMEOUT 5 TIMEOUT 6", err("ERR syntax error")),
            ("FAILOVER FORCE FORCE", err("ERR syntax error")),
            ("FAILOVER ABORT TIMEOUT 5", err("ERR syntax error")),
            ("FAILOVER ABORT", err("ERR No failover in progress.")),
            (
                "FAILOVER TO 127.0.0.1 6382 FORCE",
                err("ERR FAILOVER with force option requires both a timeout and target HOST and IP."),
            ),
            (
                "FAILOVER TO 127.0.0.1 7000",
                err("ERR FAILOVER target HOST and PORT is not a replica."),
            ),
        ] {
            assert_eq!(run(&leader, line), reply, "{line}");
        }
        assert!(leader.failovers.lock().expect("not poisoned").is_empty());
        assert_eq!(
            run(&leader, "FAILOVER TO 127.0.0.1 6383 TIMEOUT 2500"),
            Reply::OK
        );
        assert_eq!(
            *leader.failovers.lock().expect("not poisoned"),
            [(Some(NodeId(3)), Duration::from_millis(2500))]
        );
        assert_eq!(
            run(&leader, "FAILOVER"),
            err("ERR FAILOVER already in progress.")
        );
        let abort = run(&leader, "FAILOVER ABORT");
        assert!(
            matches!(&abort, Reply::Error(text) if text.starts_with("ERR FAILOVER ABORT is not supported by dkv")),
            "{abort:?}"
        );
        let follower = FakeBackend {
            role: Role::Follower,
            ..FakeBackend::new()
        };
        assert_eq!(
            run(&follower, "FAILOVER"),
            err("ERR FAILOVER is not valid when server is a replica.")
        );
        let fresh = FakeBackend::new();
        assert_eq!(run(&fresh, "FAILOVER"), Reply::OK);
        assert_eq!(
            *fresh.failovers.lock().expect("not poisoned"),
            [(None, FAILOVER_WAIT)]
        );
    }

    fn bulk(text: &str) -> Reply {
        Reply::bulk(text.to_string())
    }

    /// ROLE on the leader lists every other voter with its match index; on
    /// a follower it names the leader's RESP address, or none mid-election.
    #[test]
    fn role_in_redis_shape() {
        let mut leader = status(Role::Leader, 3, &[10, 7]);
        leader.followers[0].resp_addr = Some(([127, 0, 0, 1], 7002).into());
        assert_eq!(
            role_reply(&leader),
            Reply::Array(vec![
                bulk("master"),
                Reply::Integer(10),
                Reply::Array(vec![
                    Reply::Array(vec![bulk("127.0.0.1"), bulk("7002"), bulk("10")]),
                    Reply::Array(vec![bulk(""), bulk("0"), bulk("7")]),
                ]),
            ])
        );
        let mut follower = status(Role::Follower, 3, &[]);
        follower.leader_resp_addr = Some("127.0.0.1:7001".to_string());
        follower.last_applied = LogIndex(9);
        assert_eq!(
            role_reply(&follower),
            Reply::Array(vec![
                bulk("slave"),
                bulk("127.0.0.1"),
                Reply::Integer(7001),
                bulk("connected"),
                Reply::Integer(9),
            ])
        );
        let mut candidate = follower;
        candidate.role = Role::Candidate;
        candidate.leader = None;
        assert_eq!(
            role_reply(&candidate),
            Reply::Array(vec![
                bulk("slave"),
                bulk(""),
                Reply::Integer(0),
                bulk("connect"),
                Reply::Integer(9),
            ])
        );
    }
}
