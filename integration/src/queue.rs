//! Queue chaos: the reliable-queue pattern under faults. Producers `LPUSH`
//! unique ids onto `q`; consumers `BLMOVE q proc:<c> RIGHT LEFT` (the element
//! is now in the consumer's own processing list), then `LREM proc:<c> 1 id`
//! once the job is done. Every client is bound to one node, leaders and
//! followers alike, while a [`Schedule`] kills, pauses and partitions nodes.
//!
//! A consumer whose request had an unknown outcome (timeout, dropped
//! connection) may have had an element moved for it that it never saw: after
//! reconnecting it reads its processing list and takes over what is there
//! (recovered deliveries), as a real reliable-queue worker does.
//!
//! After the heal the final lists are read from the leader and the history is
//! checked ([`check`]):
//! - no acknowledged push is lost: each one was delivered, or is still in `q`
//!   or in a processing list;
//! - no element reaches two consumers, and none is in the final lists twice
//!   or both removed (`LREM` answered 1) and still present;
//! - nothing appears that was never pushed;
//! - every delivered element whose `LREM` was never acknowledged is still in
//!   its consumer's processing list (or its `LREM` may have applied unseen);
//! - FIFO, the queue's linearizability condition: if push(a) was acknowledged
//!   before push(b) was sent (same producer), then b is not delivered by a
//!   `BLMOVE` that returned before the one delivering a was sent, and b is not
//!   delivered while a stays in `q`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
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
use crate::workload::{classify_error, connect, ns_since};

/// The queue's key.
pub const QUEUE: &str = "q";

/// One run's settings.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// The fault schedule.
    pub schedule: Schedule,
    /// Cluster size.
    pub nodes: usize,
    /// How long producers, consumers and the nemesis run.
    pub duration: Duration,
    /// Seed of the nemesis.
    pub seed: u64,
    /// Producers per node.
    pub producers: usize,
    /// Consumers per node.
    pub consumers: usize,
    /// Per-request timeout (then: unknown outcome, reconnect).
    pub op_timeout: Duration,
    /// Keep the nemesis log off stderr.
    pub quiet: bool,
}

impl QueueConfig {
    /// Two producers and two consumers per node.
    pub fn new(schedule: Schedule, nodes: usize, duration: Duration, seed: u64) -> QueueConfig {
        QueueConfig {
            schedule,
            nodes,
            duration,
            seed,
            producers: 1,
            consumers: 2,
            op_timeout: Duration::from_secs(2),
            quiet: true,
        }
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// Answered.
    Ok,
    /// Certainly not applied.
    Fail,
    /// May or may not have applied.
    Unknown,
}

/// One step of the history (times in ns since the run's start).
#[derive(Debug, Clone)]
pub enum Event {
    /// `LPUSH q id` by `producer` (its `seq`-th push).
    Push {
        /// Element.
        id: String,
        /// Producer.
        producer: u64,
        /// Sent.
        call: u64,
        /// Answered (or given up).
        ret: u64,
        /// Outcome.
        ack: Ack,
    },
    /// `consumer` got `id`: from a `BLMOVE` reply (`recovered` false, `call`
    /// and `ret` bracket it) or from its processing list after an unknown
    /// outcome (`recovered`: the move happened at some earlier time).
    Deliver {
        /// Element.
        id: String,
        /// Consumer.
        consumer: u64,
        /// Sent.
        call: u64,
        /// Answered.
        ret: u64,
        /// Taken over from the processing list.
        recovered: bool,
    },
    /// `LREM proc:<consumer> 1 id`: `Some(n)` answered n, `None` unknown.
    Done {
        /// Element.
        id: String,
        /// Consumer.
        consumer: u64,
        /// The reply.
        removed: Option<i64>,
    },
}

/// The lists after the heal.
#[derive(Debug, Clone, Default)]
pub struct FinalState {
    /// `LRANGE q 0 -1`.
    pub queue: Vec<String>,
    /// `LRANGE proc:<c> 0 -1` per consumer.
    pub processing: BTreeMap<u64, Vec<String>>,
}

/// What the checks found.
#[derive(Debug, Clone, Default)]
pub struct Findings {
    /// Acknowledged pushes nowhere to be found.
    pub lost: Vec<String>,
    /// Elements delivered to two consumers, or present twice, or removed
    /// and present.
    pub duplicated: Vec<String>,
    /// Elements never pushed.
    pub phantoms: Vec<String>,
    /// Delivered, not acknowledged as done, yet gone from the processing list.
    pub vanished: Vec<String>,
    /// FIFO violations.
    pub order: Vec<String>,
}

impl Findings {
    /// True if every check passed.
    pub fn ok(&self) -> bool {
        self.lost.is_empty()
            && self.duplicated.is_empty()
            && self.phantoms.is_empty()
            && self.vanished.is_empty()
            && self.order.is_empty()
    }
}

/// One run's report.
#[derive(Debug)]
pub struct QueueReport {
    /// Schedule name.
    pub schedule: &'static str,
    /// Pushes: acknowledged, failed, unknown.
    pub pushes: (usize, usize, usize),
    /// Deliveries by `BLMOVE`, and recovered ones.
    pub delivered: (usize, usize),
    /// `LREM`s acknowledged.
    pub done: usize,
    /// Final `q` length and elements left in processing lists.
    pub left: (usize, usize),
    /// The checks.
    pub findings: Findings,
    /// A nemesis error, if any.
    pub nemesis_error: Option<String>,
}

impl QueueReport {
    /// True if the checks passed and the nemesis ran to the end.
    pub fn passed(&self) -> bool {
        self.findings.ok() && self.nemesis_error.is_none()
    }

    /// One line per figure.
    pub fn render(&self) -> String {
        let f = &self.findings;
        let first = |v: &[String]| v.iter().take(5).cloned().collect::<Vec<_>>().join("; ");
        format!(
            "queue chaos {}: pushes ok {} failed {} unknown {}; delivered {} (+{} recovered); done {}; \
             left in q {}, in processing {}\n  lost {} [{}]\n  duplicated {} [{}]\n  phantoms {} [{}]\n  \
             vanished {} [{}]\n  order {} [{}]\n  nemesis: {}\n  passed: {}",
            self.schedule,
            self.pushes.0,
            self.pushes.1,
            self.pushes.2,
            self.delivered.0,
            self.delivered.1,
            self.done,
            self.left.0,
            self.left.1,
            f.lost.len(),
            first(&f.lost),
            f.duplicated.len(),
            first(&f.duplicated),
            f.phantoms.len(),
            first(&f.phantoms),
            f.vanished.len(),
            first(&f.vanished),
            f.order.len(),
            first(&f.order),
            self.nemesis_error.as_deref().unwrap_or("ok"),
            self.passed(),
        )
    }
}

/// Checks a history against the final lists (see the module docs).
pub fn check(events: &[Event], end: &FinalState) -> Findings {
    let mut f = Findings::default();
    let mut pushed: HashMap<&str, (u64, u64, u64, Ack)> = HashMap::new();
    let mut by_producer: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    let mut delivered: HashMap<&str, Vec<(u64, u64, u64, bool)>> = HashMap::new();
    let mut lrem: HashMap<&str, Vec<Option<i64>>> = HashMap::new();
    for e in events {
        match e {
            Event::Push {
                id,
                producer,
                call,
                ret,
                ack,
            } => {
                pushed.insert(id, (*producer, *call, *ret, *ack));
                by_producer.entry(*producer).or_default().push(id);
            }
            Event::Deliver {
                id,
                consumer,
                call,
                ret,
                recovered,
            } => delivered
                .entry(id)
                .or_default()
                .push((*consumer, *call, *ret, *recovered)),
            Event::Done { id, removed, .. } => lrem.entry(id).or_default().push(*removed),
        }
    }
    let mut present: HashMap<&str, (usize, Option<u64>)> = HashMap::new();
    let lists = std::iter::once((None, &end.queue))
        .chain(end.processing.iter().map(|(c, l)| (Some(*c), l)));
    for (owner, list) in lists {
        for id in list {
            let slot = present.entry(id).or_insert((0, owner));
            slot.0 += 1;
            slot.1 = owner;
        }
    }
    for (id, (count, _)) in &present {
        if *count > 1 {
            f.duplicated
                .push(format!("{id} is in the final lists {count} times"));
        }
        if !pushed.contains_key(id) {
            f.phantoms.push(format!("{id} is in the final lists"));
        }
    }
    for (id, deliveries) in &delivered {
        if !pushed.contains_key(id) {
            f.phantoms.push(format!("{id} was delivered"));
        }
        let consumers: BTreeSet<u64> = deliveries.iter().map(|d| d.0).collect();
        if consumers.len() > 1 {
            f.duplicated
                .push(format!("{id} went to consumers {consumers:?}"));
        }
        let replies = lrem.get(id).map(Vec::as_slice).unwrap_or(&[]);
        let removed = replies.contains(&Some(1));
        let where_now = present.get(id).map(|p| p.1);
        if removed && where_now.is_some() {
            f.duplicated
                .push(format!("{id} was removed and is still present"));
        }
        if matches!(where_now, Some(None)) {
            f.duplicated
                .push(format!("{id} was delivered and is still in {QUEUE}"));
        }
        let unseen_remove = replies.contains(&None);
        // An LREM answering 0 is fine only after an unknown one that may have
        // removed the element first.
        if replies.contains(&Some(0)) && !unseen_remove {
            f.vanished
                .push(format!("{id}: LREM answered 0 with no earlier LREM"));
        }
        let owner = deliveries[0].0;
        if !removed && !unseen_remove && where_now != Some(Some(owner)) {
            f.vanished.push(format!(
                "{id}: delivered to {owner}, not done, not in its processing list"
            ));
        }
    }
    for (id, (_, _, _, ack)) in &pushed {
        if *ack == Ack::Ok && !delivered.contains_key(id) && !present.contains_key(id) {
            f.lost.push((*id).to_string());
        }
    }
    // FIFO per producer: the earlier acknowledged pushes must be delivered
    // no later than each later push.
    for ids in by_producer.values() {
        // The latest `call` of a BLMOVE delivering an earlier acknowledged
        // push (u64::MAX: one still in `q`), with its id.
        let mut latest: Option<(u64, &str)> = None;
        for id in ids {
            let (_, _, _, ack) = pushed[id];
            let first = delivered
                .get(id)
                .and_then(|d| d.iter().find(|d| !d.3).map(|d| (d.1, d.2)));
            if let (Some((_, ret)), Some((bound, earlier))) = (first, latest) {
                if ret < bound {
                    f.order.push(format!(
                        "{id} was delivered before {earlier}, pushed and acknowledged earlier"
                    ));
                }
            }
            if ack != Ack::Ok {
                continue;
            }
            let at = if matches!(present.get(id), Some((_, None))) {
                Some(u64::MAX)
            } else {
                first.map(|(call, _)| call)
            };
            if let Some(at) = at {
                if latest.is_none_or(|(t, _)| at > t) {
                    latest = Some((at, id));
                }
            }
        }
    }
    for v in [
        &mut f.lost,
        &mut f.duplicated,
        &mut f.phantoms,
        &mut f.vanished,
        &mut f.order,
    ] {
        v.sort();
    }
    f
}

/// A history that concurrent clients append to.
#[derive(Debug)]
pub(crate) struct Log<E>(Mutex<Vec<E>>);

impl<E> Default for Log<E> {
    fn default() -> Self {
        Log(Mutex::new(Vec::new()))
    }
}

impl<E> Log<E> {
    pub(crate) fn push(&self, e: E) {
        self.0.lock().expect("not poisoned").push(e);
    }

    /// The events so far, leaving the log empty.
    pub(crate) fn take(&self) -> Vec<E> {
        std::mem::take(&mut *self.0.lock().expect("not poisoned"))
    }
}

/// Sends `cmd` with a timeout, connecting first if `conn` is empty; `Err`
/// carries the outcome class, and an unknown outcome drops the connection.
pub(crate) async fn request(
    conn: &mut Option<MultiplexedConnection>,
    addr: SocketAddr,
    cmd: &redis::Cmd,
    timeout: Duration,
) -> Result<Value, Ack> {
    if conn.is_none() {
        *conn = Some(connect(addr, timeout).await.map_err(|_| Ack::Fail)?);
    }
    let c = conn.as_mut().ok_or(Ack::Fail)?;
    let result = match tokio::time::timeout(timeout, cmd.query_async::<Value>(c)).await {
        Err(_) => Err(Ack::Unknown),
        Ok(Ok(Value::ServerError(_))) => Err(Ack::Unknown),
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(match classify_error(&e) {
            Outcome::Fail(_) => Ack::Fail,
            _ => Ack::Unknown,
        }),
    };
    if result == Err(Ack::Unknown) {
        *conn = None;
    }
    result
}

/// A bulk or simple string reply as text.
pub(crate) fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

async fn producer(
    id: u64,
    addr: SocketAddr,
    timeout: Duration,
    origin: Instant,
    stop_at: Instant,
    log: Arc<Log<Event>>,
) {
    let mut conn = None;
    let mut seq = 0u64;
    while Instant::now() < stop_at {
        seq += 1;
        let element = format!("j{id}:{seq}");
        let call = ns_since(origin);
        let result = request(
            &mut conn,
            addr,
            redis::cmd("LPUSH").arg(QUEUE).arg(&element),
            timeout,
        )
        .await;
        let ack = match result {
            Ok(Value::Int(_)) => Ack::Ok,
            Ok(_) => Ack::Unknown,
            Err(a) => a,
        };
        log.push(Event::Push {
            id: element,
            producer: id,
            call,
            ret: ns_since(origin),
            ack,
        });
        if ack != Ack::Ok {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
}

async fn consumer(
    id: u64,
    addr: SocketAddr,
    timeout: Duration,
    origin: Instant,
    stop_at: Instant,
    log: Arc<Log<Event>>,
) {
    let processing = format!("proc:{id}");
    let mut conn = None;
    let mut seen: BTreeSet<String> = BTreeSet::new();
    // Delivered, LREM not yet answered.
    let mut pending: Vec<String> = Vec::new();
    let mut recover = false;
    while Instant::now() < stop_at {
        if recover {
            let call = ns_since(origin);
            let cmd = redis::cmd("LRANGE").arg(&processing).arg(0).arg(-1).clone();
            match request(&mut conn, addr, &cmd, timeout).await {
                Ok(Value::Array(items)) => {
                    recover = false;
                    for element in items.iter().filter_map(text) {
                        if seen.insert(element.clone()) {
                            log.push(Event::Deliver {
                                id: element.clone(),
                                consumer: id,
                                call,
                                ret: ns_since(origin),
                                recovered: true,
                            });
                            pending.push(element);
                        }
                    }
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
            continue;
        }
        if let Some(element) = pending.first().cloned() {
            let cmd = redis::cmd("LREM")
                .arg(&processing)
                .arg(1)
                .arg(&element)
                .clone();
            match request(&mut conn, addr, &cmd, timeout).await {
                Ok(Value::Int(n)) => {
                    log.push(Event::Done {
                        id: element,
                        consumer: id,
                        removed: Some(n),
                    });
                    pending.remove(0);
                }
                Err(Ack::Fail) => tokio::time::sleep(Duration::from_millis(50)).await,
                _ => {
                    log.push(Event::Done {
                        id: element,
                        consumer: id,
                        removed: None,
                    });
                    recover = true;
                }
            }
            continue;
        }
        let call = ns_since(origin);
        let cmd = redis::cmd("BLMOVE")
            .arg(QUEUE)
            .arg(&processing)
            .arg("RIGHT")
            .arg("LEFT")
            .arg(0.5)
            .clone();
        match request(&mut conn, addr, &cmd, timeout).await {
            Ok(Value::Nil) => {}
            Ok(v) => match text(&v) {
                Some(element) => {
                    log.push(Event::Deliver {
                        id: element.clone(),
                        consumer: id,
                        call,
                        ret: ns_since(origin),
                        recovered: false,
                    });
                    seen.insert(element.clone());
                    pending.push(element);
                }
                None => recover = true,
            },
            Err(Ack::Fail) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(_) => recover = true,
        }
    }
}

/// `LRANGE key 0 -1` on `addr`, retrying until `deadline`.
async fn read_list(
    conn: &mut Option<MultiplexedConnection>,
    addr: SocketAddr,
    key: &str,
    deadline: Instant,
) -> Result<Vec<String>> {
    let cmd = redis::cmd("LRANGE").arg(key).arg(0).arg(-1).clone();
    loop {
        match request(conn, addr, &cmd, Duration::from_secs(5)).await {
            Ok(Value::Array(items)) => return Ok(items.iter().filter_map(text).collect()),
            other if Instant::now() >= deadline => anyhow::bail!("final LRANGE {key}: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Reads the final lists from node `leader`, retrying for up to 30 s.
async fn final_state(cluster: &Cluster, leader: usize, consumers: &[u64]) -> Result<FinalState> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = cluster.resp_addr(leader);
    let mut conn = None;
    let mut end = FinalState {
        queue: read_list(&mut conn, addr, QUEUE, deadline).await?,
        ..FinalState::default()
    };
    for c in consumers {
        let list = read_list(&mut conn, addr, &format!("proc:{c}"), deadline).await?;
        end.processing.insert(*c, list);
    }
    Ok(end)
}

/// One run: cluster, clients on every node, the schedule, heal, final
/// lists, checks.
///
/// # Errors
/// The cluster does not start, or cannot serve the final reads.
pub async fn run_queue_chaos(config: QueueConfig) -> Result<QueueReport> {
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
    let log: Arc<Log<Event>> = Arc::new(Log::default());
    let mut tasks = tokio::task::JoinSet::new();
    let mut next = 0u64;
    let mut consumers = Vec::new();
    for node in 0..config.nodes {
        let addr = cluster.resp_addr(node);
        for _ in 0..config.producers {
            next += 1;
            tasks.spawn(producer(
                next,
                addr,
                config.op_timeout,
                origin,
                stop_at,
                log.clone(),
            ));
        }
        for _ in 0..config.consumers {
            next += 1;
            consumers.push(next);
            tasks.spawn(consumer(
                next,
                addr,
                config.op_timeout,
                origin,
                stop_at,
                log.clone(),
            ));
        }
    }
    let mut nemesis = Nemesis::new(config.seed, origin, config.quiet);
    let nemesis_result = nemesis.run(&mut cluster, config.schedule, stop_at).await;
    drain(&mut tasks, config.op_timeout * 3 + Duration::from_secs(5)).await;
    let nemesis_error = settle_on_error(&mut nemesis, &mut cluster, nemesis_result).await;
    let leader = cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .context("no leader after the heal")?;
    let end = final_state(&cluster, leader, &consumers).await?;
    cluster.shutdown();
    let events = log.take();
    let findings = check(&events, &end);
    let mut pushes = (0, 0, 0);
    let (mut delivered, mut done) = ((0, 0), 0);
    for e in &events {
        match e {
            Event::Push { ack: Ack::Ok, .. } => pushes.0 += 1,
            Event::Push { ack: Ack::Fail, .. } => pushes.1 += 1,
            Event::Push { .. } => pushes.2 += 1,
            Event::Deliver {
                recovered: false, ..
            } => delivered.0 += 1,
            Event::Deliver { .. } => delivered.1 += 1,
            Event::Done {
                removed: Some(1), ..
            } => done += 1,
            Event::Done { .. } => {}
        }
    }
    Ok(QueueReport {
        schedule: config.schedule.name(),
        pushes,
        delivered,
        done,
        left: (end.queue.len(), end.processing.values().map(Vec::len).sum()),
        findings,
        nemesis_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(id: &str, producer: u64, call: u64, ret: u64, ack: Ack) -> Event {
        Event::Push {
            id: id.into(),
            producer,
            call,
            ret,
            ack,
        }
    }

    fn deliver(id: &str, consumer: u64, call: u64, ret: u64) -> Event {
        Event::Deliver {
            id: id.into(),
            consumer,
            call,
            ret,
            recovered: false,
        }
    }

    fn done(id: &str, consumer: u64, removed: Option<i64>) -> Event {
        Event::Done {
            id: id.into(),
            consumer,
            removed,
        }
    }

    fn state(queue: &[&str], processing: &[(u64, &[&str])]) -> FinalState {
        FinalState {
            queue: queue.iter().map(|s| s.to_string()).collect(),
            processing: processing
                .iter()
                .map(|(c, l)| (*c, l.iter().map(|s| s.to_string()).collect()))
                .collect(),
        }
    }

    /// A clean history passes: pushed, delivered in order, done or still
    /// held, the rest in the queue; unknown pushes may be anywhere or nowhere.
    #[test]
    fn a_clean_history_passes() {
        let events = [
            push("a", 1, 0, 10, Ack::Ok),
            push("b", 1, 20, 30, Ack::Ok),
            push("u", 1, 40, 50, Ack::Unknown),
            push("c", 1, 60, 70, Ack::Ok),
            deliver("a", 7, 80, 90),
            done("a", 7, Some(1)),
            deliver("b", 8, 85, 95),
            done("b", 8, None),
        ];
        let f = check(&events, &state(&["c"], &[(7, &[]), (8, &[])]));
        assert!(f.ok(), "{f:?}");
    }

    /// Each kind of anomaly is caught.
    #[test]
    fn anomalies_are_caught() {
        let lost = check(&[push("a", 1, 0, 10, Ack::Ok)], &state(&[], &[]));
        assert_eq!(lost.lost, ["a"]);

        let twice = check(
            &[
                push("a", 1, 0, 10, Ack::Ok),
                deliver("a", 7, 20, 30),
                deliver("a", 8, 20, 31),
            ],
            &state(&[], &[(7, &["a"]), (8, &["a"])]),
        );
        assert_eq!(twice.duplicated.len(), 2, "{twice:?}");

        let removed_but_back = check(
            &[
                push("a", 1, 0, 10, Ack::Ok),
                deliver("a", 7, 20, 30),
                done("a", 7, Some(1)),
            ],
            &state(&["a"], &[]),
        );
        assert_eq!(removed_but_back.duplicated.len(), 2, "{removed_but_back:?}");

        let phantom = check(&[], &state(&["x"], &[]));
        assert_eq!(phantom.phantoms.len(), 1);

        let vanished = check(
            &[push("a", 1, 0, 10, Ack::Ok), deliver("a", 7, 20, 30)],
            &state(&[], &[(7, &[])]),
        );
        assert_eq!(vanished.vanished.len(), 1);

        // b overtook a: a was pushed and acknowledged before b was sent, yet
        // b's BLMOVE returned before a's was sent.
        let overtaken = check(
            &[
                push("a", 1, 0, 10, Ack::Ok),
                push("b", 1, 20, 30, Ack::Ok),
                deliver("b", 7, 40, 50),
                deliver("a", 8, 60, 70),
            ],
            &state(&[], &[(7, &["b"]), (8, &["a"])]),
        );
        assert_eq!(overtaken.order.len(), 1, "{overtaken:?}");

        // b delivered while a is still queued.
        let skipped = check(
            &[
                push("a", 1, 0, 10, Ack::Ok),
                push("b", 1, 20, 30, Ack::Ok),
                deliver("b", 7, 40, 50),
            ],
            &state(&["a"], &[(7, &["b"])]),
        );
        assert_eq!(skipped.order.len(), 1, "{skipped:?}");
    }
}
