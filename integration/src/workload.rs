//! Chaos workloads: concurrent `redis`-crate clients, one connection each, bound to
//! one node each, doing SET (unique values) / GET / DEL on registers, INCR / GET on
//! counters, and MULTI/EXEC transfers and atomic reads on a small bank; every
//! invocation and completion recorded as a [`Record`]. Each transfer also sets a
//! marker key of its own, so that after the heal a transfer whose outcome was
//! unknown can be told applied or not (see [`crate::history::bank_history`]).
//!
//! Every request has a timeout; a client that times out or loses its connection
//! records an unknown outcome and reconnects. A workload whose command the server
//! does not know (`ERR unknown command`) is switched off for the run and reported.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisError, Value};

use crate::history::{Input, Outcome, Output, Record, ACCOUNTS};

/// Register keys (`reg:0` … `reg:7`).
pub const REGISTERS: u8 = 8;
/// Counter keys (`ctr:0` … `ctr:3`).
pub const COUNTERS: u8 = 4;

/// A tiny seeded RNG (SplitMix64): runs replay from their seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// An RNG from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `lo..=hi` milliseconds.
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi.saturating_sub(lo) + 1))
    }

    /// Shuffle in place.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// Which workload a client runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// SET / GET / DEL on `reg:*`, plus a write-once `SET u:<client>:<n>` now and then.
    Register,
    /// INCR / GET on `ctr:*`.
    Counter,
    /// MULTI/EXEC transfers and reads over `acct:*`.
    Bank,
}

/// Workload shape.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    /// Register clients per node.
    pub register_clients: usize,
    /// Counter clients per node.
    pub counter_clients: usize,
    /// Bank clients per node.
    pub bank_clients: usize,
    /// Per-request timeout (then: unknown outcome, reconnect).
    pub op_timeout: Duration,
    /// Pause between a client's operations.
    pub think: Duration,
    /// RNG seed.
    pub seed: u64,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            register_clients: 2,
            counter_clients: 1,
            bank_clients: 1,
            op_timeout: Duration::from_secs(2),
            think: Duration::from_millis(3),
            seed: 1,
        }
    }
}

/// Shared state of a running workload.
#[derive(Debug, Default)]
pub struct Shared {
    /// Every record so far.
    pub records: Mutex<Vec<Record>>,
    /// Set once INCR turned out to be unsupported.
    pub no_counters: AtomicBool,
    /// Set once MULTI/EXEC turned out to be unsupported.
    pub no_bank: AtomicBool,
    /// Error replies that fit no known class (first few), for the report.
    pub unexpected: Mutex<Vec<String>>,
}

/// The run's clock: nanoseconds since `origin`.
pub fn ns_since(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Open a connection (bounded by `timeout`).
pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<MultiplexedConnection, String> {
    let client = redis::Client::open(format!("redis://{addr}/")).map_err(|e| e.to_string())?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        // Our own timeout (tokio::time::timeout) is the one that counts.
        .set_response_timeout(None);
    match tokio::time::timeout(
        timeout,
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await
    {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("connect timed out".into()),
    }
}

/// How a failed request ended: certainly not applied, or unknown.
pub fn classify_error(e: &RedisError) -> Outcome {
    let text = e.to_string();
    if e.is_connection_refusal() {
        return Outcome::Fail(format!("refused: {text}"));
    }
    if text.to_lowercase().contains("unknown command") {
        return Outcome::Fail(format!("unsupported: {text}"));
    }
    if let Some(code) = e.code() {
        if matches!(
            code,
            "CLUSTERDOWN" | "TRYAGAIN" | "LOADING" | "MOVED" | "EXECABORT"
        ) {
            return Outcome::Fail(text);
        }
    }
    Outcome::Unknown(text)
}

fn is_expected_unknown(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_unrecoverable_error()
        || e.to_string().to_lowercase().contains("outcome unknown")
        || e.to_string().to_lowercase().contains("shutting down")
}

fn value_str(v: &Value) -> Option<Option<String>> {
    match v {
        Value::Nil => Some(None),
        Value::BulkString(b) => Some(Some(String::from_utf8_lossy(b).into_owned())),
        Value::SimpleString(s) => Some(Some(s.clone())),
        Value::VerbatimString { text, .. } => Some(Some(text.clone())),
        _ => None,
    }
}

fn value_int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        Value::Nil => Some(0),
        other => value_str(other)??.parse().ok(),
    }
}

/// Decode a reply for `input`, or say why it does not fit.
pub fn decode(input: &Input, v: &Value) -> Result<Output, String> {
    let bad = || format!("unexpected reply {v:?} to {input:?}");
    if let Value::ServerError(e) = v {
        return Err(format!("server error in reply: {e:?}"));
    }
    match input {
        Input::Set { .. } | Input::SetUnique { .. } => match v {
            Value::Okay => Ok(Output::Ok),
            Value::SimpleString(s) if s == "OK" => Ok(Output::Ok),
            _ => Err(bad()),
        },
        Input::Get { .. } | Input::ReadTx { .. } => value_str(v).map(Output::Value).ok_or_else(bad),
        Input::Del { .. } => match v {
            Value::Int(n) => Ok(Output::Deleted(*n)),
            _ => Err(bad()),
        },
        Input::Incr { .. } => match v {
            Value::Int(n) => Ok(Output::Int(*n)),
            _ => Err(bad()),
        },
        Input::ReadCounter { .. } => value_int(v).map(Output::Int).ok_or_else(bad),
        Input::Transfer { .. } => match v {
            Value::Array(items) if items.len() == 3 => match (&items[0], &items[1], &items[2]) {
                (Value::Int(a), Value::Int(b), Value::Okay) => Ok(Output::Pair(*a, *b)),
                (Value::Int(a), Value::Int(b), Value::SimpleString(ok)) if ok == "OK" => {
                    Ok(Output::Pair(*a, *b))
                }
                _ => Err(bad()),
            },
            _ => Err(bad()),
        },
        Input::ReadBank => match v {
            Value::Array(items) if items.len() == ACCOUNTS => items
                .iter()
                .map(value_int)
                .collect::<Option<Vec<i64>>>()
                .map(Output::Balances)
                .ok_or_else(bad),
            _ => Err(bad()),
        },
    }
}

/// Run `p` (plain commands, no MULTI/EXEC of its own) as one transaction and
/// return EXEC's reply, or EXEC's error as an error.
///
/// The `redis` crate's atomic pipelines turn an error answer to EXEC
/// (`-CLUSTERDOWN`, `-TRYAGAIN`, `-EXECABORT`, `-ERR outcome unknown …`) into
/// "Invalid response when parsing multi response", which hides whether the
/// transaction certainly failed; so MULTI and EXEC are sent by hand.
async fn transaction(
    conn: &mut MultiplexedConnection,
    commands: &redis::Pipeline,
) -> Result<Value, RedisError> {
    let mut p = redis::pipe();
    p.ignore_errors().cmd("MULTI");
    for c in commands.cmd_iter() {
        p.add_command(c.clone());
    }
    p.cmd("EXEC");
    let mut replies: Vec<Value> = p.query_async(conn).await?;
    let unexpected = |what: &str, v: &Value| {
        RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "unexpected transaction reply",
            format!("{what}: {v:?}"),
        ))
    };
    let exec = replies.pop().unwrap_or(Value::Nil);
    match replies.first() {
        Some(Value::Okay) => {}
        Some(Value::SimpleString(s)) if s == "OK" => {}
        // The queued commands may then have run one by one: outcome unknown.
        other => return Err(unexpected("MULTI", other.unwrap_or(&Value::Nil))),
    }
    match exec {
        Value::ServerError(e) => Err(e.into()),
        Value::Array(_) => Ok(exec),
        other => Err(unexpected("EXEC", &other)),
    }
}

/// Send `input` on `conn` and wait for the reply (no timeout here).
pub async fn execute(conn: &mut MultiplexedConnection, input: &Input) -> Result<Value, RedisError> {
    match input {
        Input::Set { key, value } => {
            redis::cmd("SET")
                .arg(format!("reg:{key}"))
                .arg(value)
                .query_async(conn)
                .await
        }
        Input::SetUnique { key } => redis::cmd("SET").arg(key).arg("1").query_async(conn).await,
        Input::Get { key } => {
            redis::cmd("GET")
                .arg(format!("reg:{key}"))
                .query_async(conn)
                .await
        }
        Input::Del { key } => {
            redis::cmd("DEL")
                .arg(format!("reg:{key}"))
                .query_async(conn)
                .await
        }
        Input::Incr { key } => {
            redis::cmd("INCR")
                .arg(format!("ctr:{key}"))
                .query_async(conn)
                .await
        }
        Input::ReadCounter { key } => {
            redis::cmd("GET")
                .arg(format!("ctr:{key}"))
                .query_async(conn)
                .await
        }
        Input::Transfer {
            from,
            to,
            amount,
            tx,
        } => {
            let mut p = redis::pipe();
            p.cmd("INCRBY")
                .arg(format!("acct:{from}"))
                .arg(-amount)
                .cmd("INCRBY")
                .arg(format!("acct:{to}"))
                .arg(*amount)
                .cmd("SET")
                .arg(tx)
                .arg("1");
            transaction(conn, &p).await
        }
        Input::ReadBank => {
            let mut p = redis::pipe();
            for a in 0..ACCOUNTS {
                p.cmd("GET").arg(format!("acct:{a}"));
            }
            transaction(conn, &p).await
        }
        Input::ReadTx { key } => redis::cmd("GET").arg(key).query_async(conn).await,
    }
}

/// Run `input` once with a timeout on `conn` (connecting first if needed) and
/// classify the result. Drops the connection after anything but a clean reply.
pub async fn run_op(
    conn: &mut Option<MultiplexedConnection>,
    addr: SocketAddr,
    input: &Input,
    timeout: Duration,
    shared: &Shared,
) -> Outcome {
    if conn.is_none() {
        match connect(addr, timeout).await {
            Ok(c) => *conn = Some(c),
            Err(e) => return Outcome::Fail(format!("connect: {e}")),
        }
    }
    let c = conn.as_mut().expect("connected above");
    let outcome = match tokio::time::timeout(timeout, execute(c, input)).await {
        Err(_) => Outcome::Unknown(format!("timed out after {timeout:?}")),
        Ok(Ok(v)) => match decode(input, &v) {
            Ok(out) => Outcome::Ok(out),
            Err(e) => {
                let mut u = shared.unexpected.lock().expect("not poisoned");
                if u.len() < 20 {
                    u.push(e.clone());
                }
                Outcome::Unknown(e)
            }
        },
        Ok(Err(e)) => {
            let class = classify_error(&e);
            if matches!(class, Outcome::Unknown(_)) && !is_expected_unknown(&e) {
                let mut u = shared.unexpected.lock().expect("not poisoned");
                if u.len() < 20 {
                    u.push(format!("{input:?}: {e}"));
                }
            }
            class
        }
    };
    if !matches!(outcome, Outcome::Ok(_)) {
        // After a timeout or a lost connection the reply stream is suspect; after
        // a server error the connection is fine, but reconnecting is cheap.
        if matches!(outcome, Outcome::Unknown(_)) {
            *conn = None;
        }
    }
    outcome
}

/// One client: `kind` operations against the node at `addr` until `stop_at`.
#[allow(clippy::too_many_arguments)]
pub async fn client_loop(
    client: u64,
    node: usize,
    addr: SocketAddr,
    kind: ClientKind,
    cfg: WorkloadConfig,
    origin: Instant,
    stop_at: Instant,
    shared: Arc<Shared>,
) {
    let mut rng = Rng::new(cfg.seed.wrapping_mul(1_000_003).wrapping_add(client));
    let mut conn = None;
    let mut seq: u64 = 0;
    while Instant::now() < stop_at {
        seq += 1;
        let mut kind = kind;
        if kind == ClientKind::Counter && shared.no_counters.load(Ordering::Relaxed)
            || kind == ClientKind::Bank && shared.no_bank.load(Ordering::Relaxed)
        {
            kind = ClientKind::Register;
        }
        let input = match kind {
            ClientKind::Register => {
                let key = rng.below(u64::from(REGISTERS)) as u8;
                match rng.below(20) {
                    0..=7 => Input::Get { key },
                    8..=15 => Input::Set {
                        key,
                        value: format!("v{client}.{seq}"),
                    },
                    16 => Input::Del { key },
                    _ => Input::SetUnique {
                        key: format!("u:{client}:{seq}"),
                    },
                }
            }
            ClientKind::Counter => {
                let key = rng.below(u64::from(COUNTERS)) as u8;
                if rng.below(2) == 0 {
                    Input::Incr { key }
                } else {
                    Input::ReadCounter { key }
                }
            }
            ClientKind::Bank => {
                if rng.below(3) == 0 {
                    Input::ReadBank
                } else {
                    let from = rng.below(ACCOUNTS as u64) as u8;
                    let to = (from + 1 + rng.below(ACCOUNTS as u64 - 1) as u8) % ACCOUNTS as u8;
                    Input::Transfer {
                        from,
                        to,
                        amount: 1 + rng.below(10) as i64,
                        tx: format!("acct-tx:{client}:{seq}"),
                    }
                }
            }
        };
        let call = ns_since(origin);
        let outcome = run_op(&mut conn, addr, &input, cfg.op_timeout, &shared).await;
        let ret = ns_since(origin);
        if let Outcome::Fail(e) = &outcome {
            if e.starts_with("unsupported") {
                match kind {
                    ClientKind::Counter => shared.no_counters.store(true, Ordering::Relaxed),
                    ClientKind::Bank => shared.no_bank.store(true, Ordering::Relaxed),
                    ClientKind::Register => {}
                }
            }
        }
        let failed = !matches!(outcome, Outcome::Ok(_));
        shared.records.lock().expect("not poisoned").push(Record {
            client,
            node,
            input,
            call,
            ret,
            outcome,
        });
        let pause = if failed {
            // Do not spin on a dead node.
            cfg.think.max(Duration::from_millis(20))
        } else {
            cfg.think
        };
        tokio::time::sleep(pause).await;
    }
}
