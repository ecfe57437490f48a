//! Stream chaos: a consumer group under faults. Producers `XADD s * p <payload>`
//! with unique payloads; consumers of group `g` take new entries with
//! `XREADGROUP ... STREAMS s >`, acknowledge them with `XACK`, and take over
//! the entries of stalled consumers with `XAUTOCLAIM` (and with `XPENDING
//! IDLE` + `XCLAIM`). Now and then a consumer stalls: it forgets what it holds
//! without acknowledging it and sleeps past the claim idle time, so the others
//! must claim its entries. Every client is bound to one node, leaders and
//! followers alike, while a [`Schedule`] kills, pauses and partitions nodes.
//!
//! A request with an unknown outcome (timeout, dropped connection, an error
//! reply after a kill) may or may not have happened. A consumer whose read,
//! claim or `XACK` had an unknown outcome reads its own pending entries back
//! (`XREADGROUP ... STREAMS s 0`) and carries on with them, as a real
//! consumer does after a restart.
//!
//! After the heal every node has applied the leader's commit index, and the
//! final state is read: `XRANGE`, `XPENDING` (extended) and `XINFO GROUPS`
//! from the leader, and from every node `XINFO STREAM s FULL COUNT 0`,
//! `XINFO GROUPS` and `XPENDING` without its idle column (idle times are
//! "now" minus a replicated delivery time, so they differ by the moment each
//! node is read). [`check`] then finds:
//! - lost: an acknowledged `XADD` whose id is not in the stream, or holds
//!   another payload;
//! - duplicated: a payload twice in the stream, or an id delivered twice as a
//!   new entry (`>`);
//! - phantoms: an entry whose `XADD` was never sent or certainly failed, a
//!   delivery of an id that is not in the stream, an id `XAUTOCLAIM` reports
//!   deleted (nothing deletes entries here);
//! - order: ids not increasing in the real-time order of acknowledged XADDs
//!   (add a acknowledged before add b was sent, yet id(a) ≥ id(b));
//! - redelivered: a delivery (`>`, history, `XCLAIM`, `XAUTOCLAIM`) sent
//!   after an `XACK` of the same id was acknowledged;
//! - pel: the final pending list against the history: a pending id that is
//!   not in the stream, was acknowledged, or belongs to a consumer it was
//!   never delivered to (nor maybe delivered to, by an unknown request); a
//!   delivery count below the deliveries seen; an entry at or below the
//!   group's last-delivered id that is neither pending nor ever sent to
//!   `XACK` (it vanished from the PEL); an entry above it that was
//!   delivered; `XINFO GROUPS`'s pending count not the list's length;
//! - replicas: any node whose stream, group or pending list differs from the
//!   leader's.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use redis::aio::MultiplexedConnection;
use redis::Value;

use crate::chaos::{drain, settle_on_error, CHAOS_RAFT_KEYS};
use crate::cluster::{Cluster, ClusterOptions};
use crate::nemesis::{Nemesis, Schedule};
use crate::queue::{request, text, Ack, Log};
use crate::rng::Rng;
use crate::workload::ns_since;

/// The stream's key.
pub const STREAM: &str = "s";
/// The consumer group.
pub const GROUP: &str = "g";

/// One run's settings.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// The fault schedule.
    pub schedule: Schedule,
    /// Cluster size.
    pub nodes: usize,
    /// How long producers, consumers and the nemesis run.
    pub duration: Duration,
    /// Seed of the nemesis and of the consumers' choices.
    pub seed: u64,
    /// Producers per node.
    pub producers: usize,
    /// Consumers per node.
    pub consumers: usize,
    /// Per-request timeout (then: unknown outcome, reconnect).
    pub op_timeout: Duration,
    /// `XAUTOCLAIM`/`XCLAIM` min-idle-time; a stalled consumer sleeps longer.
    pub claim_idle: Duration,
    /// A consumer stalls about once in this many batches it holds.
    pub stall_one_in: usize,
    /// Keep the nemesis log off stderr.
    pub quiet: bool,
}

impl StreamConfig {
    /// One producer and two consumers per node.
    pub fn new(schedule: Schedule, nodes: usize, duration: Duration, seed: u64) -> StreamConfig {
        StreamConfig {
            schedule,
            nodes,
            duration,
            seed,
            producers: 1,
            consumers: 2,
            op_timeout: Duration::from_secs(2),
            claim_idle: Duration::from_millis(1500),
            stall_one_in: 40,
            quiet: true,
        }
    }
}

/// A stream id, `ms-seq`, ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Id(pub u64, pub u64);

impl Id {
    /// Parses `ms-seq`.
    pub fn parse(s: &str) -> Option<Id> {
        let (ms, seq) = s.split_once('-')?;
        Some(Id(ms.parse().ok()?, seq.parse().ok()?))
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

/// How a consumer came to hold an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Via {
    /// `XREADGROUP ... >`: a new entry.
    New,
    /// `XREADGROUP ... 0`: its own pending entries, read back.
    History,
    /// `XAUTOCLAIM`.
    AutoClaim,
    /// `XCLAIM`.
    Claim,
}

/// One step of the history (times in ns since the run's start).
#[derive(Debug, Clone)]
pub enum Event {
    /// `XADD s * p payload`; `id` is the reply when acknowledged.
    Add {
        /// Unique payload.
        payload: String,
        /// Producer.
        producer: u64,
        /// Sent.
        call: u64,
        /// Answered (or given up).
        ret: u64,
        /// Outcome.
        ack: Ack,
        /// The id the server answered.
        id: Option<Id>,
    },
    /// `consumer` got entry `id` (with the payload the reply carried).
    Deliver {
        /// Entry.
        id: Id,
        /// Its `p` field.
        payload: Option<String>,
        /// Consumer.
        consumer: u64,
        /// Sent.
        call: u64,
        /// Answered.
        ret: u64,
        /// Which command.
        via: Via,
    },
    /// A read or claim by `consumer` whose outcome is unknown: it may have
    /// delivered any entries to it.
    Maybe {
        /// Consumer.
        consumer: u64,
        /// Which command.
        via: Via,
    },
    /// `XACK s g ids...`: `Some(n)` answered n, `None` unknown.
    Xack {
        /// Entries.
        ids: Vec<Id>,
        /// Consumer.
        consumer: u64,
        /// Sent.
        call: u64,
        /// Answered (or given up).
        ret: u64,
        /// The reply.
        reply: Option<i64>,
    },
    /// `XAUTOCLAIM` listed `id` as deleted.
    Deleted {
        /// Entry.
        id: Id,
        /// Consumer.
        consumer: u64,
    },
    /// `consumer` stalled, forgetting what it held.
    Stall {
        /// Consumer.
        consumer: u64,
    },
}

/// One pending entry: `XPENDING s g - + n` without the idle time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Entry.
    pub id: Id,
    /// Owner.
    pub consumer: String,
    /// Delivery count.
    pub count: i64,
}

/// The stream and group after the heal, read from the leader.
#[derive(Debug, Clone, Default)]
pub struct FinalState {
    /// `XRANGE s - +`: id and `p` field.
    pub entries: Vec<(Id, Option<String>)>,
    /// `XPENDING s g - + <all>`.
    pub pending: Vec<Pending>,
    /// `XINFO GROUPS s`: the group's last-delivered-id.
    pub last_delivered: Id,
    /// `XINFO GROUPS s`: the group's pending count.
    pub group_pending: i64,
}

/// What the checks found.
#[derive(Debug, Clone, Default)]
pub struct Findings {
    /// Acknowledged XADDs missing or changed.
    pub lost: Vec<String>,
    /// Entries or new-entry deliveries twice.
    pub duplicated: Vec<String>,
    /// Entries or deliveries nobody added.
    pub phantoms: Vec<String>,
    /// Ids out of acknowledgement order.
    pub order: Vec<String>,
    /// Deliveries after an acknowledged XACK.
    pub redelivered: Vec<String>,
    /// The pending list against the history.
    pub pel: Vec<String>,
    /// Nodes whose final state differs from the leader's.
    pub replicas: Vec<String>,
}

impl Findings {
    /// True if every check passed.
    pub fn ok(&self) -> bool {
        self.all().iter().all(|(_, v)| v.is_empty())
    }

    fn all(&self) -> [(&'static str, &Vec<String>); 7] {
        [
            ("lost", &self.lost),
            ("duplicated", &self.duplicated),
            ("phantoms", &self.phantoms),
            ("order", &self.order),
            ("redelivered", &self.redelivered),
            ("pel", &self.pel),
            ("replicas", &self.replicas),
        ]
    }
}

/// Consumer name of consumer `c`.
fn consumer_name(c: u64) -> String {
    format!("c{c}")
}

/// One delivery, as the checks use it.
struct Seen<'a> {
    consumer: u64,
    call: u64,
    via: Via,
    payload: Option<&'a str>,
}

/// Checks a history against the final state (see the module docs). The
/// `replicas` findings come from the per-node comparison, not from here.
pub fn check(events: &[Event], end: &FinalState) -> Findings {
    let mut f = Findings::default();
    // payload -> (ack, call, ret, id)
    let mut adds: HashMap<&str, (Ack, u64, u64, Option<Id>)> = HashMap::new();
    let mut deliveries: BTreeMap<Id, Vec<Seen>> = BTreeMap::new();
    let mut maybe: BTreeSet<u64> = BTreeSet::new();
    // id -> earliest ret of an acknowledged XACK naming it.
    let mut acked: HashMap<Id, u64> = HashMap::new();
    // ids named by any XACK, answered or not.
    let mut ack_sent: BTreeSet<Id> = BTreeSet::new();
    for e in events {
        match e {
            Event::Add {
                payload,
                call,
                ret,
                ack,
                id,
                ..
            } => {
                adds.insert(payload, (*ack, *call, *ret, *id));
            }
            Event::Deliver {
                id,
                payload,
                consumer,
                call,
                via,
                ..
            } => deliveries.entry(*id).or_default().push(Seen {
                consumer: *consumer,
                call: *call,
                via: *via,
                payload: payload.as_deref(),
            }),
            Event::Maybe { consumer, .. } => {
                maybe.insert(*consumer);
            }
            Event::Xack {
                ids, ret, reply, ..
            } => {
                for id in ids {
                    ack_sent.insert(*id);
                    if reply.is_some() {
                        let t = acked.entry(*id).or_insert(*ret);
                        *t = (*t).min(*ret);
                    }
                }
            }
            Event::Deleted { id, consumer } => f.phantoms.push(format!(
                "XAUTOCLAIM by {} reported {id} deleted",
                consumer_name(*consumer)
            )),
            Event::Stall { .. } => {}
        }
    }

    // The stream against the XADDs.
    let in_stream: HashMap<Id, Option<&str>> = end
        .entries
        .iter()
        .map(|(id, p)| (*id, p.as_deref()))
        .collect();
    let mut payload_count: HashMap<&str, usize> = HashMap::new();
    for (id, payload) in &end.entries {
        let Some(p) = payload.as_deref() else {
            f.phantoms.push(format!("{id} has no p field"));
            continue;
        };
        *payload_count.entry(p).or_default() += 1;
        match adds.get(p) {
            None => f.phantoms.push(format!("{id} holds {p}, never added")),
            Some((Ack::Fail, ..)) => f
                .phantoms
                .push(format!("{id} holds {p}, whose XADD certainly failed")),
            Some(_) => {}
        }
    }
    for (p, n) in &payload_count {
        if *n > 1 {
            f.duplicated.push(format!("{p} is in the stream {n} times"));
        }
    }
    for (p, (ack, _, _, id)) in &adds {
        if *ack != Ack::Ok {
            continue;
        }
        match id {
            None => f.lost.push(format!("{p}: XADD acknowledged without an id")),
            Some(id) => match in_stream.get(id) {
                None => f
                    .lost
                    .push(format!("{p}: acknowledged as {id}, not in the stream")),
                Some(q) if *q != Some(*p) => f
                    .lost
                    .push(format!("{p}: acknowledged as {id}, which holds {q:?}")),
                Some(_) => {}
            },
        }
    }

    // Real-time order of acknowledged XADDs.
    let mut acked_adds: Vec<(u64, u64, Id, &str)> = adds
        .iter()
        .filter_map(|(p, (ack, call, ret, id))| match (ack, id) {
            (Ack::Ok, Some(id)) => Some((*call, *ret, *id, *p)),
            _ => None,
        })
        .collect();
    let mut by_ret = acked_adds.clone();
    by_ret.sort_by_key(|a| a.1);
    acked_adds.sort_by_key(|a| a.0);
    let mut before: Option<(Id, &str)> = None;
    let mut k = 0;
    for (call, _, id, p) in &acked_adds {
        while k < by_ret.len() && by_ret[k].1 < *call {
            if before.is_none_or(|(b, _)| by_ret[k].2 > b) {
                before = Some((by_ret[k].2, by_ret[k].3));
            }
            k += 1;
        }
        if let Some((b, q)) = before {
            if b >= *id {
                f.order.push(format!(
                    "{p} got {id}, not above {b} of {q}, acknowledged before it was sent"
                ));
            }
        }
    }

    // Deliveries.
    for (id, ds) in &deliveries {
        let Some(stored) = in_stream.get(id) else {
            f.phantoms
                .push(format!("{id} was delivered and is not in the stream"));
            continue;
        };
        for d in ds {
            if d.payload.is_some() && d.payload != *stored {
                f.phantoms.push(format!(
                    "{id} was delivered with {:?}, the stream holds {stored:?}",
                    d.payload
                ));
            }
        }
        let new = ds.iter().filter(|d| d.via == Via::New).count();
        if new > 1 {
            f.duplicated
                .push(format!("{id} was delivered as new {new} times"));
        }
        if let Some(t) = acked.get(id) {
            for d in ds.iter().filter(|d| d.call > *t) {
                f.redelivered.push(format!(
                    "{id} came back to {} by {:?} after its XACK was acknowledged",
                    consumer_name(d.consumer),
                    d.via
                ));
            }
        }
        if *id > end.last_delivered {
            f.pel.push(format!(
                "{id} was delivered, above the last-delivered id {}",
                end.last_delivered
            ));
        }
    }

    // The pending list.
    let mut pending_ids: BTreeSet<Id> = BTreeSet::new();
    for p in &end.pending {
        if !pending_ids.insert(p.id) {
            f.pel.push(format!("{} is pending twice", p.id));
        }
        if !in_stream.contains_key(&p.id) {
            f.pel
                .push(format!("{} is pending and not in the stream", p.id));
        }
        if acked.contains_key(&p.id) {
            f.pel
                .push(format!("{} is pending after an acknowledged XACK", p.id));
        }
        let ds = deliveries.get(&p.id).map(Vec::as_slice).unwrap_or(&[]);
        let owner_seen = ds.iter().any(|d| consumer_name(d.consumer) == p.consumer);
        let owner_maybe = maybe.iter().any(|c| consumer_name(*c) == p.consumer);
        if !owner_seen && !owner_maybe {
            f.pel.push(format!(
                "{} is pending for {}, which it was never delivered to",
                p.id, p.consumer
            ));
        }
        if (p.count as usize) < ds.len() {
            f.pel.push(format!(
                "{} has delivery count {}, delivered {} times",
                p.id,
                p.count,
                ds.len()
            ));
        }
    }
    if end.group_pending != end.pending.len() as i64 {
        f.pel.push(format!(
            "XINFO GROUPS says {} pending, XPENDING lists {}",
            end.group_pending,
            end.pending.len()
        ));
    }
    for (id, _) in &end.entries {
        if *id <= end.last_delivered && !pending_ids.contains(id) && !ack_sent.contains(id) {
            f.pel.push(format!(
                "{id} was delivered (at or below {}), never acknowledged, and is not pending",
                end.last_delivered
            ));
        }
    }
    for v in [
        &mut f.lost,
        &mut f.duplicated,
        &mut f.phantoms,
        &mut f.order,
        &mut f.redelivered,
        &mut f.pel,
    ] {
        v.sort();
    }
    f
}

/// Parses one entry `[id, [field, value, ...]]` (fields nil for a deleted
/// entry in some replies): its id and `p` field.
fn parse_entry(v: &Value) -> Option<(Id, Option<String>)> {
    let Value::Array(parts) = v else { return None };
    let id = Id::parse(&text(parts.first()?)?)?;
    let payload = match parts.get(1) {
        Some(Value::Array(fields)) => fields
            .chunks(2)
            .find(|kv| kv.first().and_then(text).as_deref() == Some("p"))
            .and_then(|kv| kv.get(1).and_then(text)),
        _ => None,
    };
    Some((id, payload))
}

/// Parses an array of entries; `None` if any is malformed.
fn parse_entries(v: &Value) -> Option<Vec<(Id, Option<String>)>> {
    match v {
        Value::Array(items) => items.iter().map(parse_entry).collect(),
        _ => None,
    }
}

/// Parses an `XREADGROUP` reply for one stream: nil is no entries.
fn parse_read(v: &Value) -> Option<Vec<(Id, Option<String>)>> {
    match v {
        Value::Nil => Some(Vec::new()),
        Value::Array(streams) => {
            let mut out = Vec::new();
            for s in streams {
                let Value::Array(kv) = s else { return None };
                out.extend(parse_entries(kv.get(1)?)?);
            }
            Some(out)
        }
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
        let payload = format!("m{id}:{seq}");
        let call = ns_since(origin);
        let cmd = redis::cmd("XADD")
            .arg(STREAM)
            .arg("*")
            .arg("p")
            .arg(&payload)
            .clone();
        let result = request(&mut conn, addr, &cmd, timeout).await;
        let (ack, added) = match result {
            Ok(v) => match text(&v).as_deref().and_then(Id::parse) {
                Some(added) => (Ack::Ok, Some(added)),
                None => (Ack::Unknown, None),
            },
            Err(a) => (a, None),
        };
        log.push(Event::Add {
            payload,
            producer: id,
            call,
            ret: ns_since(origin),
            ack,
            id: added,
        });
        if ack != Ack::Ok {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
}

/// One consumer's state between requests.
struct Consumer {
    id: u64,
    name: String,
    addr: SocketAddr,
    timeout: Duration,
    claim_idle_ms: u64,
    origin: Instant,
    log: Arc<Log<Event>>,
    conn: Option<MultiplexedConnection>,
    /// Entries delivered to it and not yet acknowledged.
    held: Vec<Id>,
    /// Read its own pending entries back before anything else.
    recover: bool,
    /// `XAUTOCLAIM`'s cursor.
    cursor: String,
}

impl Consumer {
    /// Logs the deliveries of one reply and holds them.
    fn delivered(&mut self, entries: Vec<(Id, Option<String>)>, call: u64, via: Via) {
        let ret = ns_since(self.origin);
        for (id, payload) in entries {
            self.log.push(Event::Deliver {
                id,
                payload,
                consumer: self.id,
                call,
                ret,
                via,
            });
            if !self.held.contains(&id) {
                self.held.push(id);
            }
        }
    }

    /// A read or claim whose reply is missing or malformed: it may have
    /// delivered entries; read them back.
    async fn unknown(&mut self, via: Via, outcome: Result<Value, Ack>) {
        match outcome {
            Err(Ack::Fail) => tokio::time::sleep(Duration::from_millis(50)).await,
            _ => {
                self.log.push(Event::Maybe {
                    consumer: self.id,
                    via,
                });
                self.recover = true;
            }
        }
    }

    /// `XREADGROUP GROUP g <me> COUNT n [BLOCK ms] STREAMS s <from>`.
    fn readgroup(&self, count: usize, block_ms: Option<u64>, from: &str) -> redis::Cmd {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(&self.name)
            .arg("COUNT")
            .arg(count);
        if let Some(ms) = block_ms {
            cmd.arg("BLOCK").arg(ms);
        }
        cmd.arg("STREAMS").arg(STREAM).arg(from);
        cmd
    }

    async fn send(&mut self, cmd: &redis::Cmd) -> Result<Value, Ack> {
        request(&mut self.conn, self.addr, cmd, self.timeout).await
    }

    /// `XREADGROUP GROUP g me COUNT 100 STREAMS s 0`: its own pending
    /// entries, which it then holds (and acknowledges).
    async fn read_history(&mut self) {
        let call = ns_since(self.origin);
        let cmd = self.readgroup(100, None, "0");
        let outcome = self.send(&cmd).await;
        match outcome.as_ref().ok().and_then(parse_read) {
            Some(entries) => {
                self.recover = false;
                self.delivered(entries, call, Via::History);
            }
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }

    async fn ack(&mut self) {
        let ids = self.held.clone();
        let call = ns_since(self.origin);
        let mut cmd = redis::cmd("XACK");
        cmd.arg(STREAM).arg(GROUP);
        for id in &ids {
            cmd.arg(id.to_string());
        }
        let outcome = self.send(&cmd).await;
        let reply = match outcome {
            Ok(Value::Int(n)) => Some(n),
            Err(Ack::Fail) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                return;
            }
            _ => None,
        };
        self.log.push(Event::Xack {
            ids,
            consumer: self.id,
            call,
            ret: ns_since(self.origin),
            reply,
        });
        self.held.clear();
        if reply.is_none() {
            self.recover = true;
        }
    }

    async fn read_new(&mut self) {
        let call = ns_since(self.origin);
        let cmd = self.readgroup(10, Some(300), ">");
        let outcome = self.send(&cmd).await;
        match outcome.as_ref().ok().and_then(parse_read) {
            Some(entries) => self.delivered(entries, call, Via::New),
            None => self.unknown(Via::New, outcome).await,
        }
    }

    async fn autoclaim(&mut self) {
        let call = ns_since(self.origin);
        let cmd = redis::cmd("XAUTOCLAIM")
            .arg(STREAM)
            .arg(GROUP)
            .arg(&self.name)
            .arg(self.claim_idle_ms)
            .arg(&self.cursor)
            .arg("COUNT")
            .arg(20)
            .clone();
        let outcome = self.send(&cmd).await;
        let parsed = match &outcome {
            Ok(Value::Array(parts)) if parts.len() == 3 => {
                let cursor = text(&parts[0]);
                let entries = parse_entries(&parts[1]);
                let deleted: Option<Vec<Id>> = match &parts[2] {
                    Value::Array(ids) => ids
                        .iter()
                        .map(|v| text(v).as_deref().and_then(Id::parse))
                        .collect(),
                    _ => None,
                };
                cursor.zip(entries).zip(deleted)
            }
            _ => None,
        };
        match parsed {
            Some(((cursor, entries), deleted)) => {
                self.cursor = cursor;
                for id in deleted {
                    self.log.push(Event::Deleted {
                        id,
                        consumer: self.id,
                    });
                }
                self.delivered(entries, call, Via::AutoClaim);
            }
            None => self.unknown(Via::AutoClaim, outcome).await,
        }
    }

    /// `XPENDING s g IDLE ms - + 10`, then `XCLAIM` of what it lists.
    async fn claim(&mut self) {
        let cmd = redis::cmd("XPENDING")
            .arg(STREAM)
            .arg(GROUP)
            .arg("IDLE")
            .arg(self.claim_idle_ms)
            .arg("-")
            .arg("+")
            .arg(10)
            .clone();
        let ids: Vec<String> = match self.send(&cmd).await {
            Ok(Value::Array(rows)) => rows
                .iter()
                .filter_map(|r| match r {
                    Value::Array(cols) => cols.first().and_then(text),
                    _ => None,
                })
                .collect(),
            _ => return,
        };
        if ids.is_empty() {
            return;
        }
        let call = ns_since(self.origin);
        let mut cmd = redis::cmd("XCLAIM");
        cmd.arg(STREAM)
            .arg(GROUP)
            .arg(&self.name)
            .arg(self.claim_idle_ms);
        for id in &ids {
            cmd.arg(id);
        }
        let outcome = self.send(&cmd).await;
        match outcome.as_ref().ok().and_then(parse_entries) {
            Some(entries) => self.delivered(entries, call, Via::Claim),
            None => self.unknown(Via::Claim, outcome).await,
        }
    }
}

async fn consumer(
    id: u64,
    addr: SocketAddr,
    config: StreamConfig,
    origin: Instant,
    stop_at: Instant,
    log: Arc<Log<Event>>,
) {
    let mut rng = Rng(config.seed ^ id.wrapping_mul(0x9E37_79B9));
    let mut c = Consumer {
        id,
        name: consumer_name(id),
        addr,
        timeout: config.op_timeout,
        claim_idle_ms: config.claim_idle.as_millis() as u64,
        origin,
        log: log.clone(),
        conn: None,
        held: Vec::new(),
        recover: false,
        cursor: "0-0".into(),
    };
    let mut fetches = 0u64;
    while Instant::now() < stop_at {
        if c.recover {
            c.read_history().await;
        } else if !c.held.is_empty() {
            if rng.below(config.stall_one_in.max(1)) == 0 {
                log.push(Event::Stall { consumer: id });
                c.held.clear();
                let wake = Instant::now() + config.claim_idle * 2;
                tokio::time::sleep_until(wake.min(stop_at).into()).await;
            } else {
                c.ack().await;
            }
        } else {
            // Counted over fetches only: a count over every round would put
            // the claims on the rounds that acknowledge.
            fetches += 1;
            if fetches.is_multiple_of(8) {
                c.claim().await;
            } else if fetches.is_multiple_of(4) {
                c.autoclaim().await;
            } else {
                c.read_new().await;
            }
        }
    }
}

/// Sends `cmd` to `addr` until it answers (not an error), up to `deadline`.
async fn read_until(
    conn: &mut Option<MultiplexedConnection>,
    addr: SocketAddr,
    cmd: &redis::Cmd,
    deadline: Instant,
) -> Result<Value> {
    loop {
        match request(conn, addr, cmd, Duration::from_secs(10)).await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => bail!("{cmd:?} on {addr}: {e:?}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn xpending_cmd() -> redis::Cmd {
    redis::cmd("XPENDING")
        .arg(STREAM)
        .arg(GROUP)
        .arg("-")
        .arg("+")
        .arg(i64::MAX)
        .clone()
}

/// `XPENDING` rows without their idle times.
fn parse_pending(v: &Value) -> Result<Vec<Pending>> {
    let Value::Array(rows) = v else {
        bail!("XPENDING answered {v:?}")
    };
    rows.iter()
        .map(|r| match r {
            Value::Array(cols) if cols.len() == 4 => {
                let id = cols.first().and_then(text).as_deref().and_then(Id::parse);
                let consumer = cols.get(1).and_then(text);
                match (id, consumer, &cols[3]) {
                    (Some(id), Some(consumer), Value::Int(count)) => Ok(Pending {
                        id,
                        consumer,
                        count: *count,
                    }),
                    _ => bail!("XPENDING row {r:?}"),
                }
            }
            _ => bail!("XPENDING row {r:?}"),
        })
        .collect()
}

/// The group's `last-delivered-id` and `pending` from `XINFO GROUPS s`.
fn parse_group(v: &Value) -> Result<(Id, i64)> {
    let Value::Array(groups) = v else {
        bail!("XINFO GROUPS answered {v:?}")
    };
    for g in groups {
        let Value::Array(kv) = g else { continue };
        let field = |name: &str| {
            kv.chunks(2)
                .find(|p| p.first().and_then(text).as_deref() == Some(name))
                .and_then(|p| p.get(1))
        };
        if field("name").and_then(text).as_deref() != Some(GROUP) {
            continue;
        }
        let last = field("last-delivered-id")
            .and_then(text)
            .as_deref()
            .and_then(Id::parse);
        let pending = match field("pending") {
            Some(Value::Int(n)) => Some(*n),
            _ => None,
        };
        if let (Some(last), Some(pending)) = (last, pending) {
            return Ok((last, pending));
        }
        bail!("XINFO GROUPS entry {g:?}");
    }
    bail!("XINFO GROUPS has no group {GROUP}: {v:?}")
}

/// What one node says about the stream after the heal: `XINFO STREAM s FULL
/// COUNT 0`, `XINFO GROUPS s`, and the pending list without idle times.
async fn node_view(cluster: &Cluster, node: usize, deadline: Instant) -> Result<String> {
    let addr = cluster.resp_addr(node);
    let mut conn = None;
    let full = read_until(
        &mut conn,
        addr,
        redis::cmd("XINFO")
            .arg("STREAM")
            .arg(STREAM)
            .arg("FULL")
            .arg("COUNT")
            .arg(0),
        deadline,
    )
    .await?;
    let groups = read_until(
        &mut conn,
        addr,
        redis::cmd("XINFO").arg("GROUPS").arg(STREAM),
        deadline,
    )
    .await?;
    let pending = parse_pending(&read_until(&mut conn, addr, &xpending_cmd(), deadline).await?)?;
    Ok(format!(
        "XINFO STREAM FULL: {full:?}\nXINFO GROUPS: {groups:?}\nXPENDING: {pending:?}"
    ))
}

/// Reads the final state from `leader` and compares every node's view with
/// the leader's (differences in the returned list).
async fn final_state(cluster: &mut Cluster, leader: usize) -> Result<(FinalState, Vec<String>)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    if let Ok(s) = cluster.status(leader).await {
        for i in 0..cluster.len() {
            let _ = cluster
                .wait_applied(i, s.commit_index, Duration::from_secs(20))
                .await;
        }
    }
    let addr = cluster.resp_addr(leader);
    let mut conn = None;
    let range = read_until(
        &mut conn,
        addr,
        redis::cmd("XRANGE").arg(STREAM).arg("-").arg("+"),
        deadline,
    )
    .await?;
    let entries = parse_entries(&range).context("XRANGE reply malformed")?;
    let pending = parse_pending(&read_until(&mut conn, addr, &xpending_cmd(), deadline).await?)?;
    let groups = read_until(
        &mut conn,
        addr,
        redis::cmd("XINFO").arg("GROUPS").arg(STREAM),
        deadline,
    )
    .await?;
    let (last_delivered, group_pending) = parse_group(&groups)?;
    let end = FinalState {
        entries,
        pending,
        last_delivered,
        group_pending,
    };
    let reference = node_view(cluster, leader, deadline).await?;
    let mut differences = Vec::new();
    for node in (0..cluster.len()).filter(|n| *n != leader) {
        let view = node_view(cluster, node, deadline).await?;
        if view != reference {
            let at = view
                .chars()
                .zip(reference.chars())
                .position(|(a, b)| a != b)
                .unwrap_or(view.len().min(reference.len()));
            let from = at.saturating_sub(80);
            let snip = |s: &str| s.chars().skip(from).take(240).collect::<String>();
            differences.push(format!(
                "node {node} differs from leader {leader} at character {at}: {:?} vs {:?}",
                snip(&view),
                snip(&reference)
            ));
        }
    }
    Ok((end, differences))
}

/// One run's report.
#[derive(Debug)]
pub struct StreamReport {
    /// Schedule name.
    pub schedule: &'static str,
    /// XADDs: acknowledged, failed, unknown.
    pub adds: (usize, usize, usize),
    /// Deliveries per way.
    pub delivered: BTreeMap<String, usize>,
    /// Reads and claims with an unknown outcome.
    pub maybe: usize,
    /// XACKs: acknowledged (ids they named), unknown.
    pub xacks: (usize, usize, usize),
    /// Stalls.
    pub stalls: usize,
    /// Final stream length, pending count, last-delivered id.
    pub end: (usize, usize, Id),
    /// The checks.
    pub findings: Findings,
    /// A nemesis error, if any.
    pub nemesis_error: Option<String>,
}

impl StreamReport {
    /// True if the checks passed and the nemesis ran to the end.
    pub fn passed(&self) -> bool {
        self.findings.ok() && self.nemesis_error.is_none()
    }

    /// One line per figure.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "stream chaos {}: XADD ok {} failed {} unknown {}; delivered {:?} (+{} unknown reads/claims); \
             XACK ok {} (naming {} ids) unknown {}; stalls {}; end: length {} pending {} last-delivered {}",
            self.schedule,
            self.adds.0,
            self.adds.1,
            self.adds.2,
            self.delivered,
            self.maybe,
            self.xacks.0,
            self.xacks.1,
            self.xacks.2,
            self.stalls,
            self.end.0,
            self.end.1,
            self.end.2,
        );
        for (name, v) in self.findings.all() {
            let first: Vec<&str> = v.iter().take(5).map(String::as_str).collect();
            let _ = writeln!(s, "  {name} {} [{}]", v.len(), first.join("; "));
        }
        let _ = write!(
            s,
            "  nemesis: {}\n  passed: {}",
            self.nemesis_error.as_deref().unwrap_or("ok"),
            self.passed()
        );
        s
    }
}

/// Creates the group (and the stream) on the leader before the faults.
async fn create_group(cluster: &Cluster, leader: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let addr = cluster.resp_addr(leader);
    let mut conn = None;
    let cmd = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(STREAM)
        .arg(GROUP)
        .arg("$")
        .arg("MKSTREAM")
        .clone();
    loop {
        match request(&mut conn, addr, &cmd, Duration::from_secs(5)).await {
            Ok(Value::Okay) => return Ok(()),
            Ok(Value::SimpleString(s)) if s == "OK" => return Ok(()),
            other if Instant::now() >= deadline => bail!("XGROUP CREATE: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// One run: cluster, the group, producers and consumers on every node, the
/// schedule, heal, final state from every node, checks.
///
/// # Errors
/// The cluster does not start, or cannot serve the final reads.
pub async fn run_stream_chaos(config: StreamConfig) -> Result<StreamReport> {
    let opts = ClusterOptions {
        proxies: true,
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start_opts(config.nodes, opts, |node| {
        node.raft_extra = CHAOS_RAFT_KEYS.to_string();
    })
    .await?;
    let first_leader = cluster.wait_for_leader(Duration::from_secs(20)).await?;
    create_group(&cluster, first_leader).await?;
    let origin = Instant::now();
    let stop_at = origin + config.duration;
    let log: Arc<Log<Event>> = Arc::new(Log::default());
    let mut tasks = tokio::task::JoinSet::new();
    let mut next = 0u64;
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
            tasks.spawn(consumer(
                next,
                addr,
                config.clone(),
                origin,
                stop_at,
                log.clone(),
            ));
        }
    }
    let mut nemesis = Nemesis::new(config.seed, origin, config.quiet);
    let nemesis_result = nemesis.run(&mut cluster, config.schedule, stop_at).await;
    drain(
        &mut tasks,
        config.op_timeout * 3 + config.claim_idle * 2 + Duration::from_secs(5),
    )
    .await;
    let nemesis_error = settle_on_error(&mut nemesis, &mut cluster, nemesis_result).await;
    let leader = cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .context("no leader after the heal")?;
    let (end, differences) = final_state(&mut cluster, leader).await?;
    cluster.shutdown();
    let events = log.take();
    let mut findings = check(&events, &end);
    findings.replicas = differences;
    let mut adds = (0, 0, 0);
    let mut delivered: BTreeMap<String, usize> = BTreeMap::new();
    let (mut maybe, mut xacks, mut stalls) = (0, (0, 0, 0), 0);
    for e in &events {
        match e {
            Event::Add { ack: Ack::Ok, .. } => adds.0 += 1,
            Event::Add { ack: Ack::Fail, .. } => adds.1 += 1,
            Event::Add { .. } => adds.2 += 1,
            Event::Deliver { via, .. } => *delivered.entry(format!("{via:?}")).or_default() += 1,
            Event::Maybe { .. } => maybe += 1,
            Event::Xack {
                reply: Some(_),
                ids,
                ..
            } => {
                xacks.0 += 1;
                xacks.1 += ids.len();
            }
            Event::Xack { .. } => xacks.2 += 1,
            Event::Stall { .. } => stalls += 1,
            Event::Deleted { .. } => {}
        }
    }
    Ok(StreamReport {
        schedule: config.schedule.name(),
        adds,
        delivered,
        maybe,
        xacks,
        stalls,
        end: (end.entries.len(), end.pending.len(), end.last_delivered),
        findings,
        nemesis_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(p: &str, call: u64, ret: u64, ack: Ack, id: Option<Id>) -> Event {
        Event::Add {
            payload: p.into(),
            producer: 1,
            call,
            ret,
            ack,
            id,
        }
    }

    fn deliver(id: Id, p: &str, consumer: u64, call: u64, via: Via) -> Event {
        Event::Deliver {
            id,
            payload: Some(p.into()),
            consumer,
            call,
            ret: call + 5,
            via,
        }
    }

    fn xack(ids: &[Id], consumer: u64, call: u64, reply: Option<i64>) -> Event {
        Event::Xack {
            ids: ids.to_vec(),
            consumer,
            call,
            ret: call + 5,
            reply,
        }
    }

    fn pending(id: Id, consumer: u64, count: i64) -> Pending {
        Pending {
            id,
            consumer: consumer_name(consumer),
            count,
        }
    }

    const A: Id = Id(100, 0);
    const B: Id = Id(100, 1);
    const C: Id = Id(200, 0);

    /// A run: a, b, c added (u unknown, never applied); a delivered and
    /// acknowledged; b delivered to 7, stalled, claimed by 8 and pending
    /// there; c not yet delivered.
    fn clean() -> (Vec<Event>, FinalState) {
        let events = vec![
            add("a", 0, 10, Ack::Ok, Some(A)),
            add("b", 20, 30, Ack::Ok, Some(B)),
            add("u", 35, 40, Ack::Unknown, None),
            add("c", 50, 60, Ack::Ok, Some(C)),
            deliver(A, "a", 7, 70, Via::New),
            deliver(B, "b", 7, 70, Via::New),
            xack(&[A], 7, 80, Some(1)),
            Event::Stall { consumer: 7 },
            deliver(B, "b", 8, 90, Via::AutoClaim),
        ];
        let end = FinalState {
            entries: vec![
                (A, Some("a".into())),
                (B, Some("b".into())),
                (C, Some("c".into())),
            ],
            pending: vec![pending(B, 8, 2)],
            last_delivered: B,
            group_pending: 1,
        };
        (events, end)
    }

    #[test]
    fn a_clean_history_passes() {
        let (events, end) = clean();
        let f = check(&events, &end);
        assert!(f.ok(), "{f:?}");
    }

    #[test]
    fn ids_parse_and_order_as_redis_orders_them() {
        assert_eq!(Id::parse("5-10"), Some(Id(5, 10)));
        assert_eq!(Id::parse("5"), None);
        assert_eq!(Id::parse("x-1"), None);
        assert!(Id(5, 10) < Id(6, 0) && Id(5, 9) < Id(5, 10));
        assert_eq!(Id(5, 10).to_string(), "5-10");
    }

    #[test]
    fn a_lost_or_changed_add_is_caught() {
        let (events, mut end) = clean();
        end.entries.retain(|e| e.0 != C);
        assert_eq!(check(&events, &end).lost.len(), 1);
        let (events, mut end) = clean();
        end.entries[2].1 = Some("u".into());
        let f = check(&events, &end);
        assert_eq!(f.lost.len(), 1, "{f:?}");
    }

    #[test]
    fn phantoms_and_duplicates_are_caught() {
        let (mut events, mut end) = clean();
        events.push(add("f", 61, 62, Ack::Fail, None));
        end.entries.push((Id(300, 0), Some("f".into())));
        end.entries.push((Id(300, 1), Some("zz".into())));
        end.entries.push((Id(300, 2), Some("a".into())));
        let f = check(&events, &end);
        assert_eq!(f.phantoms.len(), 2, "{f:?}");
        assert_eq!(f.duplicated.len(), 1, "{f:?}");

        let (mut events, end) = clean();
        events.push(deliver(B, "b", 9, 95, Via::New));
        assert_eq!(check(&events, &end).duplicated.len(), 1);

        let (mut events, end) = clean();
        events.push(Event::Deleted { id: B, consumer: 8 });
        assert_eq!(check(&events, &end).phantoms.len(), 1);
    }

    #[test]
    fn ids_out_of_acknowledgement_order_are_caught() {
        let (mut events, mut end) = clean();
        // d sent after c was acknowledged, yet got a smaller id.
        events.push(add("d", 70, 75, Ack::Ok, Some(Id(150, 0))));
        end.entries.push((Id(150, 0), Some("d".into())));
        end.entries.sort();
        let f = check(&events, &end);
        assert_eq!(f.order.len(), 1, "{f:?}");
        // Concurrent adds may take either order.
        let (mut events, mut end) = clean();
        events.push(add("d", 55, 75, Ack::Ok, Some(Id(150, 0))));
        end.entries.push((Id(150, 0), Some("d".into())));
        end.entries.sort();
        let f = check(&events, &end);
        assert!(f.ok(), "{f:?}");
    }

    #[test]
    fn a_delivery_after_an_acknowledged_xack_is_caught() {
        let (mut events, end) = clean();
        events.push(deliver(A, "a", 8, 200, Via::AutoClaim));
        let f = check(&events, &end);
        assert_eq!(f.redelivered.len(), 1, "{f:?}");
        // An XACK whose outcome is unknown proves nothing.
        let (mut events, mut end) = clean();
        events.push(xack(&[B], 8, 100, None));
        events.push(deliver(B, "b", 8, 200, Via::History));
        end.pending[0].count = 3;
        let f = check(&events, &end);
        assert!(f.ok(), "{f:?}");
    }

    #[test]
    fn an_inconsistent_pel_is_caught() {
        // b neither pending nor ever acknowledged.
        let (events, mut end) = clean();
        end.pending.clear();
        end.group_pending = 0;
        assert_eq!(check(&events, &end).pel.len(), 1);
        // a pending after its XACK was acknowledged.
        let (events, mut end) = clean();
        end.pending.insert(0, pending(A, 7, 1));
        end.group_pending = 2;
        assert_eq!(check(&events, &end).pel.len(), 1);
        // b pending for a consumer it never went to...
        let (events, mut end) = clean();
        end.pending[0].consumer = consumer_name(9);
        assert_eq!(check(&events, &end).pel.len(), 1);
        // ...unless that consumer had a claim with an unknown outcome.
        let (mut events, mut end) = clean();
        events.push(Event::Maybe {
            consumer: 9,
            via: Via::AutoClaim,
        });
        end.pending[0].consumer = consumer_name(9);
        assert!(check(&events, &end).ok());
        // A delivery count below the deliveries seen; a summary count off.
        let (events, mut end) = clean();
        end.pending[0].count = 1;
        end.group_pending = 3;
        assert_eq!(check(&events, &end).pel.len(), 2);
        // c delivered, yet above the last-delivered id.
        let (mut events, end) = clean();
        events.push(deliver(C, "c", 8, 100, Via::New));
        events.push(xack(&[C], 8, 110, Some(1)));
        assert_eq!(check(&events, &end).pel.len(), 1);
    }
}
