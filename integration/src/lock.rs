//! Lock chaos (issue 14, must-show 4): clients take one lock the way
//! redis-py's `Lock` does — `SET lock <token> NX PX <ttl>` to acquire, a
//! check-and-delete Lua script (`EVALSHA`, then `SCRIPT LOAD` + `EVALSHA` on
//! `NOSCRIPT`) to release — around an `INCR` of a shared counter, every
//! client bound to one node (leaders and followers alike) while a
//! [`Schedule`] kills, pauses and partitions nodes. The history records each
//! critical section: its acquire, its `INCR` and its release, each with call
//! and return times.
//!
//! A client that acquired sends its `INCR` only while the lock's validity
//! (`acquire call + ttl - clock margin`) leaves room for a whole request
//! timeout, and releases after it. A client whose acquire had an unknown
//! outcome holds nothing: it sends the release script for its token (which
//! deletes nothing but its own token) and tries again.
//!
//! [`check`] reads the history (and the counter after the heal):
//! - **mutual exclusion**: the holds of two sections never overlap in real
//!   time. A section holds the lock from its acquire's return until its
//!   release was sent; a release that answered 0 (or never answered) only
//!   proves the lock up to its validity, so the hold is cut there. A release
//!   that answered 1 proves the key still had the section's token when it
//!   ran (tokens are unique and a key's value never comes back), with no
//!   clock assumption; the validity cut relies on the server's expiry clock
//!   and the clients' clock being one machine's (a margin covers the
//!   millisecond rounding);
//! - **lost lock**: a release that answered 0 and returned before the
//!   validity ended means the lock vanished while it was valid;
//! - **counter**: the final counter lies between the acknowledged `INCR`s
//!   and those plus the unknown ones (a failed `INCR` certainly did not
//!   apply);
//! - **increments**: acknowledged `INCR` replies are distinct, within
//!   `1..=counter`, and ordered as the requests were in real time (if one
//!   returned before another was sent, its value is smaller).
//!
//! Deterministic in what it checks: the checker sees only the recorded
//! history, so synthetic histories test it (see the tests below).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use redis::aio::MultiplexedConnection;
use redis::Value;

use crate::chaos::{drain, settle_on_error, CHAOS_RAFT_KEYS};
use crate::cluster::{Cluster, ClusterOptions};
use crate::history::Outcome;
use crate::nemesis::{Nemesis, Schedule};
use crate::workload::{classify_error, connect, ns_since, Rng};

/// The lock's key.
pub const LOCK: &str = "lock";
/// The counter's key.
pub const COUNTER: &str = "counter";
/// The release script: delete `KEYS[1]` only if it holds `ARGV[1]`; 1 if it
/// did, else 0 (redis-py's `Lock.release` contract).
pub const RELEASE_SCRIPT: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then\n  \
     redis.call('del', KEYS[1])\n  return 1\nend\nreturn 0\n";

/// [`RELEASE_SCRIPT`]'s SHA-1: clients send `EVALSHA` first, as redis-py
/// does (it hashes the script itself). The redis-server test checks it
/// against `SCRIPT LOAD`'s answer.
pub const RELEASE_SHA: &str = "412e9ca9439aa6f2f3833b6f939356c6a1fa0a9e";

/// One run's settings.
#[derive(Debug, Clone)]
pub struct LockConfig {
    /// The fault schedule.
    pub schedule: Schedule,
    /// Cluster size.
    pub nodes: usize,
    /// How long the clients and the nemesis run.
    pub duration: Duration,
    /// Seed of the nemesis and the clients' pauses.
    pub seed: u64,
    /// Clients per node.
    pub clients: usize,
    /// The lock's time to live (`PX`).
    pub ttl: Duration,
    /// Per-request timeout (then: unknown outcome, reconnect).
    pub op_timeout: Duration,
    /// Keep the nemesis log off stderr.
    pub quiet: bool,
}

impl LockConfig {
    /// Two clients per node, a 5 s lock, 2 s request timeouts.
    pub fn new(schedule: Schedule, nodes: usize, duration: Duration, seed: u64) -> LockConfig {
        LockConfig {
            schedule,
            nodes,
            duration,
            seed,
            clients: 2,
            ttl: Duration::from_secs(5),
            op_timeout: Duration::from_secs(2),
            quiet: true,
        }
    }
}

/// What the checker needs to know about the lock's timing.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    /// The lock's time to live (ns).
    pub ttl_ns: u64,
    /// Subtracted from the validity: the server's expiry is in whole
    /// milliseconds of the wall clock, the history in ns of a monotonic one.
    pub margin_ns: u64,
}

impl Validity {
    /// The default margin (10 ms) for a lock of `ttl`.
    pub fn new(ttl: Duration) -> Validity {
        Validity {
            ttl_ns: u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX),
            margin_ns: 10_000_000,
        }
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Answered with this integer.
    Int(i64),
    /// Certainly not applied.
    Fail,
    /// May or may not have applied.
    Unknown,
}

/// One request of a section: sent at `call`, answered (or given up) at
/// `ret`, both in ns since the run's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timed {
    /// Sent.
    pub call: u64,
    /// Answered or given up.
    pub ret: u64,
    /// The outcome.
    pub reply: Reply,
}

/// One critical section: an acquire that answered `OK`, then the `INCR`
/// (unless too little validity was left) and the release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The client.
    pub client: u64,
    /// Its unique token.
    pub token: String,
    /// The acquire's (call, ret).
    pub acquired: (u64, u64),
    /// The `INCR`, if sent.
    pub incr: Option<Timed>,
    /// The release script, if sent (1: deleted our token, 0: not ours).
    pub release: Option<Timed>,
}

impl Section {
    /// The end of the lock's guaranteed validity.
    fn valid_until(&self, v: Validity) -> u64 {
        (self.acquired.0 + v.ttl_ns).saturating_sub(v.margin_ns)
    }

    /// The interval during which this section provably held the lock (see
    /// the module docs), or `None` if empty.
    pub fn hold(&self, v: Validity) -> Option<(u64, u64)> {
        let start = self.acquired.1;
        let end = match self.release {
            Some(Timed {
                call,
                reply: Reply::Int(1),
                ..
            }) => call,
            Some(Timed { call, .. }) => call.min(self.valid_until(v)),
            None => self.valid_until(v),
        };
        (end > start).then_some((start, end))
    }
}

/// Acquires that granted nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refusals {
    /// Answered nil: someone else held the lock.
    pub held: usize,
    /// Certainly not applied.
    pub failed: usize,
    /// Unknown outcome: the client holds nothing either way.
    pub unknown: usize,
}

/// What the checks found (each entry names the sections concerned).
#[derive(Debug, Clone, Default)]
pub struct Findings {
    /// Two holds that overlap.
    pub overlaps: Vec<String>,
    /// Releases that found the lock gone while it was valid.
    pub lost: Vec<String>,
    /// The counter outside [acknowledged, acknowledged + unknown].
    pub counter: Vec<String>,
    /// Duplicate, out-of-range or out-of-order `INCR` replies.
    pub increments: Vec<String>,
}

impl Findings {
    /// True if every check passed.
    pub fn ok(&self) -> bool {
        self.overlaps.is_empty()
            && self.lost.is_empty()
            && self.counter.is_empty()
            && self.increments.is_empty()
    }
}

/// Checks `sections` against the final `counter` (see the module docs).
pub fn check(sections: &[Section], counter: i64, v: Validity) -> Findings {
    let mut f = Findings::default();
    // Mutual exclusion: sweep the holds by start, against the one that
    // reaches furthest so far.
    let mut holds: Vec<((u64, u64), &Section)> = sections
        .iter()
        .filter_map(|s| Some((s.hold(v)?, s)))
        .collect();
    holds.sort_by_key(|(h, _)| *h);
    let mut furthest: Option<((u64, u64), &Section)> = None;
    for &(h, s) in &holds {
        if let Some((fh, fs)) = furthest {
            if h.0 < fh.1 {
                f.overlaps.push(format!(
                    "{} held the lock over [{}, {}] ns, {} over [{}, {}] ns",
                    fs.token, fh.0, fh.1, s.token, h.0, h.1
                ));
            }
        }
        if furthest.is_none_or(|(fh, _)| h.1 > fh.1) {
            furthest = Some((h, s));
        }
    }
    for s in sections {
        if let Some(Timed {
            ret,
            reply: Reply::Int(0),
            ..
        }) = s.release
        {
            if ret < s.valid_until(v) {
                f.lost.push(format!(
                    "{}: the release answered 0 at {ret} ns, before the lock's validity ended at {} ns",
                    s.token,
                    s.valid_until(v)
                ));
            }
        }
    }
    // The counter.
    let incrs: Vec<(&Section, Timed)> =
        sections.iter().filter_map(|s| Some((s, s.incr?))).collect();
    let acked = incrs
        .iter()
        .filter(|(_, t)| matches!(t.reply, Reply::Int(_)))
        .count() as i64;
    let unknown = incrs
        .iter()
        .filter(|(_, t)| t.reply == Reply::Unknown)
        .count() as i64;
    if counter < acked || counter > acked + unknown {
        f.counter.push(format!(
            "the counter is {counter}; acknowledged INCRs {acked}, unknown {unknown}"
        ));
    }
    // Acknowledged INCR replies: distinct, in range, in real-time order.
    let mut by_value: BTreeMap<i64, &str> = BTreeMap::new();
    let mut done: Vec<(u64, i64, &str)> = Vec::new();
    for (s, t) in &incrs {
        if let Reply::Int(n) = t.reply {
            if let Some(other) = by_value.insert(n, &s.token) {
                f.increments
                    .push(format!("INCR answered {n} to both {other} and {}", s.token));
            }
            if n < 1 || n > counter {
                f.increments.push(format!(
                    "{}: INCR answered {n}, outside 1..={counter}",
                    s.token
                ));
            }
            done.push((t.ret, n, &s.token));
        }
    }
    done.sort();
    // Prefix maxima of the values by return time: the largest value of an
    // INCR that returned before a given time.
    let mut prefix: Vec<(u64, i64, &str)> = Vec::with_capacity(done.len());
    for &(ret, n, token) in &done {
        match prefix.last() {
            Some(&(_, m, _)) if m >= n => prefix.push((ret, m, prefix[prefix.len() - 1].2)),
            _ => prefix.push((ret, n, token)),
        }
    }
    for (s, t) in &incrs {
        if let Reply::Int(n) = t.reply {
            let before = prefix.partition_point(|&(ret, _, _)| ret < t.call);
            if before > 0 {
                let (_, m, token) = prefix[before - 1];
                if m >= n {
                    f.increments.push(format!(
                        "{}: INCR answered {n} after {token}'s INCR answered {m} and returned before it was sent",
                        s.token
                    ));
                }
            }
        }
    }
    for v in [
        &mut f.overlaps,
        &mut f.lost,
        &mut f.counter,
        &mut f.increments,
    ] {
        v.sort();
    }
    f
}

/// One run's report.
#[derive(Debug)]
pub struct LockReport {
    /// Schedule name.
    pub schedule: &'static str,
    /// Critical sections (acquires that answered `OK`).
    pub sections: usize,
    /// Acquires that granted nothing.
    pub refusals: Refusals,
    /// `INCR`s: acknowledged, failed, unknown, not sent (validity too short).
    pub incrs: (usize, usize, usize, usize),
    /// Releases: answered 1, answered 0, failed or unknown.
    pub releases: (usize, usize, usize),
    /// The counter after the heal.
    pub counter: i64,
    /// The checks.
    pub findings: Findings,
    /// A nemesis error, if any.
    pub nemesis_error: Option<String>,
}

impl LockReport {
    /// Builds the report of `sections` with the final `counter`.
    pub fn new(
        schedule: &'static str,
        sections: &[Section],
        refusals: Refusals,
        counter: i64,
        v: Validity,
    ) -> LockReport {
        let mut incrs = (0, 0, 0, 0);
        let mut releases = (0, 0, 0);
        for s in sections {
            match s.incr.map(|t| t.reply) {
                Some(Reply::Int(_)) => incrs.0 += 1,
                Some(Reply::Fail) => incrs.1 += 1,
                Some(Reply::Unknown) => incrs.2 += 1,
                None => incrs.3 += 1,
            }
            match s.release.map(|t| t.reply) {
                Some(Reply::Int(1)) => releases.0 += 1,
                Some(Reply::Int(_)) => releases.1 += 1,
                _ => releases.2 += 1,
            }
        }
        LockReport {
            schedule,
            sections: sections.len(),
            refusals,
            incrs,
            releases,
            counter,
            findings: check(sections, counter, v),
            nemesis_error: None,
        }
    }

    /// True if the checks passed and the nemesis ran to the end.
    pub fn passed(&self) -> bool {
        self.findings.ok() && self.nemesis_error.is_none()
    }

    /// One line per figure.
    pub fn render(&self) -> String {
        let f = &self.findings;
        let first = |v: &[String]| v.iter().take(5).cloned().collect::<Vec<_>>().join("; ");
        format!(
            "lock chaos {}: sections {} (acquires refused {}, failed {}, unknown {}); \
             INCR ok {} failed {} unknown {} skipped {}; release 1: {} 0: {} failed/unknown: {}; counter {}\n  \
             overlaps {} [{}]\n  lost locks {} [{}]\n  counter {} [{}]\n  increments {} [{}]\n  \
             nemesis: {}\n  passed: {}",
            self.schedule,
            self.sections,
            self.refusals.held,
            self.refusals.failed,
            self.refusals.unknown,
            self.incrs.0,
            self.incrs.1,
            self.incrs.2,
            self.incrs.3,
            self.releases.0,
            self.releases.1,
            self.releases.2,
            self.counter,
            f.overlaps.len(),
            first(&f.overlaps),
            f.lost.len(),
            first(&f.lost),
            f.counter.len(),
            first(&f.counter),
            f.increments.len(),
            first(&f.increments),
            self.nemesis_error.as_deref().unwrap_or("ok"),
            self.passed(),
        )
    }
}

/// The history so far.
#[derive(Debug, Default)]
pub struct History {
    sections: Mutex<Vec<Section>>,
    refusals: Mutex<Refusals>,
}

impl History {
    /// The sections and refusals recorded, taken out.
    pub fn take(&self) -> (Vec<Section>, Refusals) {
        (
            std::mem::take(&mut *self.sections.lock().expect("not poisoned")),
            std::mem::take(&mut *self.refusals.lock().expect("not poisoned")),
        )
    }
}

/// Why a request gave no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// Certainly not applied.
    Fail,
    /// May or may not have applied.
    Unknown,
    /// `NOSCRIPT`: the script is not in the cache (not run).
    NoScript,
}

/// Sends `cmd` with a timeout, reconnecting lazily; drops the connection
/// after an unknown outcome.
async fn request(
    conn: &mut Option<MultiplexedConnection>,
    addr: SocketAddr,
    cmd: &redis::Cmd,
    timeout: Duration,
) -> Result<Value, Failure> {
    if conn.is_none() {
        *conn = Some(connect(addr, timeout).await.map_err(|_| Failure::Fail)?);
    }
    let c = conn.as_mut().ok_or(Failure::Fail)?;
    let result = match tokio::time::timeout(timeout, cmd.query_async::<Value>(c)).await {
        Err(_) => Err(Failure::Unknown),
        Ok(Ok(Value::ServerError(e))) if e.code() == "NOSCRIPT" => Err(Failure::NoScript),
        Ok(Ok(Value::ServerError(_))) => Err(Failure::Unknown),
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) if e.code() == Some("NOSCRIPT") => Err(Failure::NoScript),
        Ok(Err(e)) => Err(match classify_error(&e) {
            Outcome::Fail(_) => Failure::Fail,
            _ => Failure::Unknown,
        }),
    };
    if result == Err(Failure::Unknown) {
        *conn = None;
    }
    result
}

/// Runs the release script for `token`: `EVALSHA`, and on `NOSCRIPT`,
/// `SCRIPT LOAD` then `EVALSHA` again (redis-py's `Script` call).
async fn release(
    conn: &mut Option<MultiplexedConnection>,
    addr: SocketAddr,
    sha: &mut Option<String>,
    token: &str,
    timeout: Duration,
) -> Reply {
    // At most EVALSHA, NOSCRIPT, SCRIPT LOAD, EVALSHA.
    for _ in 0..3 {
        let Some(known) = sha.clone() else {
            let load = redis::cmd("SCRIPT").arg("LOAD").arg(RELEASE_SCRIPT).clone();
            match request(conn, addr, &load, timeout).await {
                Ok(v) => match text(&v) {
                    Some(s) => *sha = Some(s),
                    None => return Reply::Fail,
                },
                Err(_) => return Reply::Fail,
            }
            continue;
        };
        let cmd = redis::cmd("EVALSHA")
            .arg(&known)
            .arg(1)
            .arg(LOCK)
            .arg(token)
            .clone();
        return match request(conn, addr, &cmd, timeout).await {
            Ok(Value::Int(n)) => Reply::Int(n),
            Ok(_) => Reply::Unknown,
            Err(Failure::NoScript) => {
                *sha = None;
                continue;
            }
            Err(Failure::Fail) => Reply::Fail,
            Err(Failure::Unknown) => Reply::Unknown,
        };
    }
    // NOSCRIPT right after SCRIPT LOAD: the release certainly did not run.
    Reply::Fail
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// One client's settings.
#[derive(Debug, Clone, Copy)]
pub struct ClientSettings {
    /// The lock's time to live.
    pub ttl: Duration,
    /// Per-request timeout.
    pub op_timeout: Duration,
    /// Seed of its pauses.
    pub seed: u64,
}

/// One client: sections against the node at `addr` until `stop_at`.
pub async fn client(
    id: u64,
    addr: SocketAddr,
    settings: ClientSettings,
    origin: Instant,
    stop_at: Instant,
    history: Arc<History>,
) {
    let mut rng = Rng::new(settings.seed.wrapping_mul(1_000_003).wrapping_add(id));
    let mut conn = None;
    let mut sha = Some(RELEASE_SHA.to_string());
    let ttl_ms = u64::try_from(settings.ttl.as_millis()).unwrap_or(u64::MAX);
    let v = Validity::new(settings.ttl);
    let timeout_ns = u64::try_from(settings.op_timeout.as_nanos()).unwrap_or(u64::MAX);
    let mut seq = 0u64;
    while Instant::now() < stop_at {
        seq += 1;
        let token = format!("c{id}:{seq}");
        let call = ns_since(origin);
        let acquire = redis::cmd("SET")
            .arg(LOCK)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .clone();
        let result = request(&mut conn, addr, &acquire, settings.op_timeout).await;
        let ret = ns_since(origin);
        let granted = match result {
            Ok(Value::Okay) => true,
            Ok(Value::SimpleString(s)) if s == "OK" => true,
            Ok(Value::Nil) => {
                history.refusals.lock().expect("not poisoned").held += 1;
                false
            }
            Err(Failure::Fail) => {
                history.refusals.lock().expect("not poisoned").failed += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
                false
            }
            Ok(_) | Err(_) => {
                history.refusals.lock().expect("not poisoned").unknown += 1;
                // The lock may be ours: free it if so (the script deletes
                // only this token), as a careful client would.
                let _ = release(&mut conn, addr, &mut sha, &token, settings.op_timeout).await;
                false
            }
        };
        if !granted {
            tokio::time::sleep(Duration::from_millis(2 + rng.below(15))).await;
            continue;
        }
        let mut section = Section {
            client: id,
            token: token.clone(),
            acquired: (call, ret),
            incr: None,
            release: None,
        };
        let valid_until = (call + v.ttl_ns).saturating_sub(v.margin_ns);
        if ns_since(origin) + timeout_ns < valid_until {
            let call = ns_since(origin);
            let reply = match request(
                &mut conn,
                addr,
                redis::cmd("INCR").arg(COUNTER),
                settings.op_timeout,
            )
            .await
            {
                Ok(Value::Int(n)) => Reply::Int(n),
                Err(Failure::Fail) => Reply::Fail,
                Ok(_) | Err(_) => Reply::Unknown,
            };
            section.incr = Some(Timed {
                call,
                ret: ns_since(origin),
                reply,
            });
        }
        let call = ns_since(origin);
        let reply = release(&mut conn, addr, &mut sha, &token, settings.op_timeout).await;
        section.release = Some(Timed {
            call,
            ret: ns_since(origin),
            reply,
        });
        history.sections.lock().expect("not poisoned").push(section);
        tokio::time::sleep(Duration::from_millis(1 + rng.below(3))).await;
    }
}

/// `GET counter` on `addr`, retrying until `deadline` (a missing counter
/// is 0).
///
/// # Errors
/// No answer by `deadline`, or a value that is not an integer.
pub async fn read_counter(addr: SocketAddr, deadline: Instant) -> Result<i64> {
    let mut conn = None;
    let cmd = redis::cmd("GET").arg(COUNTER).clone();
    loop {
        match request(&mut conn, addr, &cmd, Duration::from_secs(5)).await {
            Ok(Value::Nil) => return Ok(0),
            Ok(v) => {
                let s = text(&v).with_context(|| format!("GET {COUNTER}: {v:?}"))?;
                return s
                    .parse()
                    .with_context(|| format!("GET {COUNTER}: {s:?} is not an integer"));
            }
            Err(e) if Instant::now() >= deadline => {
                anyhow::bail!("final GET {COUNTER}: {e:?}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Starts `per_addr` clients on each of `addrs`; they stop at `stop_at`.
pub fn spawn_clients(
    tasks: &mut tokio::task::JoinSet<()>,
    addrs: &[SocketAddr],
    per_addr: usize,
    settings: ClientSettings,
    origin: Instant,
    stop_at: Instant,
    history: &Arc<History>,
) {
    let mut id = 0u64;
    for &addr in addrs {
        for _ in 0..per_addr {
            id += 1;
            tasks.spawn(client(id, addr, settings, origin, stop_at, history.clone()));
        }
    }
}

/// One run: cluster, clients on every node, the schedule, heal, the final
/// counter, checks.
///
/// # Errors
/// The cluster does not start, or cannot serve the final read.
pub async fn run_lock_chaos(config: LockConfig) -> Result<LockReport> {
    let opts = ClusterOptions {
        proxies: true,
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start_opts(config.nodes, opts, |node| {
        node.raft_extra = CHAOS_RAFT_KEYS.to_string();
    })
    .await?;
    let origin = Instant::now();
    let stop_at = origin + config.duration;
    let history = Arc::new(History::default());
    let mut tasks = tokio::task::JoinSet::new();
    let addrs: Vec<SocketAddr> = (0..config.nodes).map(|i| cluster.resp_addr(i)).collect();
    let settings = ClientSettings {
        ttl: config.ttl,
        op_timeout: config.op_timeout,
        seed: config.seed,
    };
    spawn_clients(
        &mut tasks,
        &addrs,
        config.clients,
        settings,
        origin,
        stop_at,
        &history,
    );
    let mut nemesis = Nemesis::new(config.seed, origin, config.quiet);
    let nemesis_result = nemesis.run(&mut cluster, config.schedule, stop_at).await;
    // A client's last iteration: the acquire, then the INCR and the release
    // (EVALSHA, SCRIPT LOAD, EVALSHA), each a connect and a request bounded
    // by the timeout. A client aborted mid-section would leave an
    // acknowledged INCR out of the history, so the grace covers all of it.
    drain(&mut tasks, config.op_timeout * 10 + Duration::from_secs(5)).await;
    let nemesis_error = settle_on_error(&mut nemesis, &mut cluster, nemesis_result).await;
    let leader = cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .context("no leader after the heal")?;
    let counter = read_counter(
        cluster.resp_addr(leader),
        Instant::now() + Duration::from_secs(30),
    )
    .await?;
    cluster.shutdown();
    let (sections, refusals) = history.take();
    let mut report = LockReport::new(
        config.schedule.name(),
        &sections,
        refusals,
        counter,
        Validity::new(config.ttl),
    );
    report.nemesis_error = nemesis_error;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn v() -> Validity {
        Validity {
            ttl_ns: 1000 * MS,
            margin_ns: 10 * MS,
        }
    }

    fn timed(call: u64, ret: u64, reply: Reply) -> Option<Timed> {
        Some(Timed {
            call: call * MS,
            ret: ret * MS,
            reply,
        })
    }

    /// A section acquired over [a0, a1] ms, INCR over [i0, i1] answering
    /// `incr`, release over [r0, r1] answering `release`.
    fn section(
        token: &str,
        acquired: (u64, u64),
        incr: Option<(u64, u64, Reply)>,
        release: Option<(u64, u64, Reply)>,
    ) -> Section {
        Section {
            client: 1,
            token: token.into(),
            acquired: (acquired.0 * MS, acquired.1 * MS),
            incr: incr.and_then(|(c, r, reply)| timed(c, r, reply)),
            release: release.and_then(|(c, r, reply)| timed(c, r, reply)),
        }
    }

    /// Sections one after the other, each released: passes.
    #[test]
    fn sequential_sections_pass() {
        let s = [
            section(
                "a",
                (0, 5),
                Some((6, 8, Reply::Int(1))),
                Some((9, 11, Reply::Int(1))),
            ),
            section(
                "b",
                (10, 12),
                Some((13, 15, Reply::Int(2))),
                Some((16, 18, Reply::Int(1))),
            ),
            section(
                "c",
                (17, 20),
                Some((21, 22, Reply::Int(3))),
                Some((23, 24, Reply::Int(1))),
            ),
        ];
        let f = check(&s, 3, v());
        assert!(f.ok(), "{f:?}");
    }

    /// Indeterminate outcomes are accounted for: an unknown INCR may or may
    /// not count, a failed one does not; an unknown release cuts the hold
    /// at the validity, after which another client may take the lock; a
    /// skipped INCR counts nothing.
    #[test]
    fn indeterminate_outcomes_pass_either_way() {
        let s = [
            section(
                "a",
                (0, 5),
                Some((6, 2000, Reply::Unknown)),
                Some((2001, 2100, Reply::Unknown)),
            ),
            // Acquired after a's validity (1000 - 10 ms after its call).
            section(
                "b",
                (2200, 2210),
                Some((2211, 2215, Reply::Int(2))),
                Some((2216, 2220, Reply::Int(1))),
            ),
            section(
                "c",
                (2221, 2225),
                Some((2226, 2230, Reply::Fail)),
                Some((2231, 2232, Reply::Int(1))),
            ),
            section("d", (2233, 3500), None, Some((3501, 3502, Reply::Int(0)))),
        ];
        // a's INCR applied (2) ...
        assert!(check(&s, 2, v()).ok(), "{:?}", check(&s, 2, v()));
        // ... or not (then b's INCR answered 1).
        let mut s2 = s.clone();
        s2[1].incr = timed(2211, 2215, Reply::Int(1));
        assert!(check(&s2, 1, v()).ok(), "{:?}", check(&s2, 1, v()));
        // The counter may not exceed acknowledged + unknown, nor fall short
        // of the acknowledged.
        assert_eq!(check(&s, 3, v()).counter.len(), 1);
        assert_eq!(check(&s2, 0, v()).counter.len(), 1);
    }

    /// Two holders inside the lock at once are caught, whether both
    /// released with 1 (proven holds, no clock involved) or one is only
    /// covered by its validity.
    #[test]
    fn overlapping_holders_fail() {
        let both_proven = [
            section(
                "a",
                (0, 5),
                Some((6, 8, Reply::Int(1))),
                Some((30, 31, Reply::Int(1))),
            ),
            section(
                "b",
                (10, 12),
                Some((13, 15, Reply::Int(2))),
                Some((16, 18, Reply::Int(1))),
            ),
        ];
        let f = check(&both_proven, 2, v());
        assert_eq!(f.overlaps.len(), 1, "{f:?}");
        assert!(f.overlaps[0].contains("a held") && f.overlaps[0].contains("b over"));

        // a sent its release only at 2000 ms and got no answer: its hold is
        // cut at its validity (990 ms); b acquired inside it.
        let within_validity = [
            section(
                "a",
                (0, 5),
                Some((6, 8, Reply::Int(1))),
                Some((2000, 2100, Reply::Unknown)),
            ),
            section(
                "b",
                (500, 505),
                Some((506, 508, Reply::Int(2))),
                Some((509, 510, Reply::Int(1))),
            ),
        ];
        assert_eq!(check(&within_validity, 2, v()).overlaps.len(), 1);

        // Past the validity the same b is fine.
        let after_validity = [
            within_validity[0].clone(),
            section(
                "b",
                (985, 995),
                Some((996, 998, Reply::Int(2))),
                Some((999, 1000, Reply::Int(1))),
            ),
        ];
        assert!(check(&after_validity, 2, v()).ok());

        // A long-held proven lock against a later one that started inside
        // it: the sweep compares with the furthest-reaching hold, not the
        // previous one.
        let nested = [
            section("a", (0, 1), None, Some((100, 101, Reply::Int(1)))),
            section("b", (2, 3), None, Some((4, 5, Reply::Int(1)))),
            section("c", (50, 51), None, Some((60, 61, Reply::Int(1)))),
        ];
        assert_eq!(check(&nested, 0, v()).overlaps.len(), 2);
    }

    /// A release that finds the lock gone while it was still valid is a
    /// lost lock; after the validity it is not.
    #[test]
    fn a_lock_lost_while_valid_fails() {
        let lost = [section(
            "a",
            (0, 5),
            Some((6, 8, Reply::Int(1))),
            Some((9, 12, Reply::Int(0))),
        )];
        assert_eq!(check(&lost, 1, v()).lost.len(), 1);
        let expired = [section(
            "a",
            (0, 5),
            Some((6, 8, Reply::Int(1))),
            Some((9, 995, Reply::Int(0))),
        )];
        assert!(check(&expired, 1, v()).ok());
    }

    /// Lost updates and duplicate or reordered increments are caught.
    #[test]
    fn counter_and_increment_anomalies_fail() {
        let s = [
            section(
                "a",
                (0, 5),
                Some((6, 8, Reply::Int(1))),
                Some((9, 11, Reply::Int(1))),
            ),
            section(
                "b",
                (12, 14),
                Some((15, 16, Reply::Int(2))),
                Some((17, 18, Reply::Int(1))),
            ),
        ];
        // An acknowledged INCR lost: the counter is short.
        assert_eq!(check(&s, 1, v()).counter.len(), 1);
        // Phantom increments: the counter is past what was sent.
        assert_eq!(check(&s, 5, v()).counter.len(), 1);

        let mut dup = s.clone();
        dup[1].incr = timed(15, 16, Reply::Int(1));
        let f = check(&dup, 2, v());
        assert!(
            f.increments.iter().any(|e| e.contains("to both a and b")),
            "{f:?}"
        );

        // b's INCR was sent after a's returned, yet answered a smaller value.
        let mut reordered = s.clone();
        reordered[0].incr = timed(6, 8, Reply::Int(2));
        reordered[1].incr = timed(15, 16, Reply::Int(1));
        let f = check(&reordered, 2, v());
        assert_eq!(f.increments.len(), 1, "{f:?}");
        assert!(f.increments[0].starts_with("b: INCR answered 1 after a's"));

        let mut out_of_range = s.clone();
        out_of_range[1].incr = timed(15, 16, Reply::Int(7));
        assert!(!check(&out_of_range, 2, v()).increments.is_empty());
    }

    /// A hold is empty when the acquire returned after the validity, and a
    /// never-released section holds until its validity ends.
    #[test]
    fn holds_follow_the_release_and_the_validity() {
        let late = section("a", (0, 995), None, Some((996, 997, Reply::Int(0))));
        assert_eq!(late.hold(v()), None);
        let proven = section("a", (0, 995), None, Some((1500, 1501, Reply::Int(1))));
        assert_eq!(proven.hold(v()), Some((995 * MS, 1500 * MS)));
        let never = section("a", (0, 5), None, None);
        assert_eq!(never.hold(v()), Some((5 * MS, 990 * MS)));
    }
}
