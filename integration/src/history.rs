//! Client histories from chaos runs and the checks run on them: linearizability
//! (with [`crate::lincheck`] = `dkv::lincheck`, one model per workload), no acknowledged write lost, and
//! session order (each client sees its own writes).
//!
//! Timestamps are nanoseconds since the run started, from one monotonic clock.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::lincheck::{self, CheckResult, Model, Operation, RegisterInput, RegisterOutput};
use serde_json::{json, Value};

/// Number of accounts in the bank workload (one multi-key partition).
pub const ACCOUNTS: usize = 4;

/// What a client asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// `SET reg:<key> <value>` (values are unique per run).
    Set {
        /// Register index.
        key: u8,
        /// The value.
        value: String,
    },
    /// `GET reg:<key>`.
    Get {
        /// Register index.
        key: u8,
    },
    /// `DEL reg:<key>`.
    Del {
        /// Register index.
        key: u8,
    },
    /// `INCR ctr:<key>`.
    Incr {
        /// Counter index.
        key: u8,
    },
    /// `GET ctr:<key>`.
    ReadCounter {
        /// Counter index.
        key: u8,
    },
    /// `MULTI; INCRBY acct:<from> -amount; INCRBY acct:<to> amount; SET <tx> 1; EXEC`.
    ///
    /// The marker key `tx` (unique per run) shows after the heal whether a transfer
    /// whose outcome the client does not know took effect ([`Input::ReadTx`]).
    Transfer {
        /// Debited account.
        from: u8,
        /// Credited account.
        to: u8,
        /// Amount moved.
        amount: i64,
        /// The transfer's marker key.
        tx: String,
    },
    /// `MULTI; GET acct:0; …; GET acct:<ACCOUNTS-1>; EXEC`.
    ReadBank,
    /// `GET <tx>` of a transfer's marker key, after the heal and after every other
    /// final read (present: the transfer took effect; absent: it never did, or
    /// only after every read of the run, which is the same to the checker).
    ReadTx {
        /// The marker key.
        key: String,
    },
    /// `SET <key> 1` on a key written once (checked for loss at the end only).
    SetUnique {
        /// The key.
        key: String,
    },
}

impl Input {
    /// True for commands that change state.
    pub fn is_write(&self) -> bool {
        !matches!(
            self,
            Input::Get { .. } | Input::ReadCounter { .. } | Input::ReadBank | Input::ReadTx { .. }
        )
    }

    fn to_json(&self) -> Value {
        match self {
            Input::Set { key, value } => json!({"f": "set", "key": key, "value": value}),
            Input::Get { key } => json!({"f": "get", "key": key}),
            Input::Del { key } => json!({"f": "del", "key": key}),
            Input::Incr { key } => json!({"f": "incr", "key": key}),
            Input::ReadCounter { key } => json!({"f": "read-counter", "key": key}),
            Input::Transfer {
                from,
                to,
                amount,
                tx,
            } => {
                json!({"f": "transfer", "from": from, "to": to, "amount": amount, "tx": tx})
            }
            Input::ReadBank => json!({"f": "read-bank"}),
            Input::ReadTx { key } => json!({"f": "read-tx", "key": key}),
            Input::SetUnique { key } => json!({"f": "set-unique", "key": key}),
        }
    }
}

/// A successful reply, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// `+OK`.
    Ok,
    /// A GET's value (None: absent).
    Value(Option<String>),
    /// DEL's count.
    Deleted(i64),
    /// INCR's new value, or a counter GET (absent reads 0).
    Int(i64),
    /// A transfer's two new balances.
    Pair(i64, i64),
    /// Every account's balance (absent reads 0).
    Balances(Vec<i64>),
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Completed with this result.
    Ok(Output),
    /// Certainly not applied (`CLUSTERDOWN`, `TRYAGAIN`, `LOADING`, `MOVED`,
    /// connection refused before sending).
    Fail(String),
    /// May or may not have been applied (timeout, connection lost after sending,
    /// `ERR outcome unknown`, any unexpected error).
    Unknown(String),
}

/// One operation: invocation and completion.
#[derive(Clone, Debug)]
pub struct Record {
    /// Client id (final reads after the heal use ids from [`FINAL_CLIENT_BASE`]).
    pub client: u64,
    /// Node the client talks to.
    pub node: usize,
    /// What was asked.
    pub input: Input,
    /// Invocation time (ns since the run started).
    pub call: u64,
    /// Completion time, or when the client gave up (ns).
    pub ret: u64,
    /// Result.
    pub outcome: Outcome,
}

/// Client ids at or above this are the final reads after the heal.
pub const FINAL_CLIENT_BASE: u64 = 1_000_000;

impl Record {
    /// True if the operation completed successfully.
    pub fn is_ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok(_))
    }

    fn to_json(&self) -> Value {
        let (kind, detail) = match &self.outcome {
            Outcome::Ok(o) => ("ok", format!("{o:?}")),
            Outcome::Fail(e) => ("fail", e.clone()),
            Outcome::Unknown(e) => ("info", e.clone()),
        };
        json!({
            "client": self.client, "node": self.node, "input": self.input.to_json(),
            "call_ns": self.call, "ret_ns": self.ret, "type": kind, "result": detail,
        })
    }
}

/// The whole history as JSON (for a saved failing run).
pub fn history_json(records: &[Record]) -> Value {
    Value::Array(records.iter().map(Record::to_json).collect())
}

/// Parse a history saved by [`history_json`] (the `history` array of a saved
/// run's `history.json`) back into records, e.g. to re-run the checks on it.
///
/// # Errors
/// A record whose input or result does not parse.
pub fn records_from_json(history: &Value) -> Result<Vec<Record>, String> {
    let items = history.as_array().ok_or("history is not an array")?;
    items
        .iter()
        .enumerate()
        .map(|(i, r)| record_from_json(r).map_err(|e| format!("record {i}: {e}: {r}")))
        .collect()
}

fn record_from_json(r: &Value) -> Result<Record, String> {
    let u = |v: &Value, name: &str| v[name].as_u64().ok_or(format!("no {name}"));
    let i = |v: &Value, name: &str| v[name].as_i64().ok_or(format!("no {name}"));
    let small = |v: &Value, name: &str| -> Result<u8, String> {
        u8::try_from(u(v, name)?).map_err(|e| format!("{name}: {e}"))
    };
    let s = |v: &Value, name: &str| {
        v[name]
            .as_str()
            .map(String::from)
            .ok_or(format!("no {name}"))
    };
    let inp = &r["input"];
    let input = match inp["f"].as_str().ok_or("no input.f")? {
        "set" => Input::Set {
            key: small(inp, "key")?,
            value: s(inp, "value")?,
        },
        "get" => Input::Get {
            key: small(inp, "key")?,
        },
        "del" => Input::Del {
            key: small(inp, "key")?,
        },
        "incr" => Input::Incr {
            key: small(inp, "key")?,
        },
        "read-counter" => Input::ReadCounter {
            key: small(inp, "key")?,
        },
        "transfer" => Input::Transfer {
            from: small(inp, "from")?,
            to: small(inp, "to")?,
            amount: i(inp, "amount")?,
            // Histories saved before transfers had markers.
            tx: s(inp, "tx").unwrap_or_default(),
        },
        "read-bank" => Input::ReadBank,
        "read-tx" => Input::ReadTx {
            key: s(inp, "key")?,
        },
        "set-unique" => Input::SetUnique {
            key: s(inp, "key")?,
        },
        other => return Err(format!("unknown input {other:?}")),
    };
    let result = s(r, "result")?;
    let outcome = match r["type"].as_str().ok_or("no type")? {
        "ok" => Outcome::Ok(parse_output(&result).ok_or(format!("bad result {result:?}"))?),
        "fail" => Outcome::Fail(result),
        "info" => Outcome::Unknown(result),
        other => return Err(format!("unknown type {other:?}")),
    };
    Ok(Record {
        client: u(r, "client")?,
        node: usize::try_from(u(r, "node")?).map_err(|e| e.to_string())?,
        input,
        call: u(r, "call_ns")?,
        ret: u(r, "ret_ns")?,
        outcome,
    })
}

/// Parse an [`Output`]'s `Debug` text (as [`history_json`] writes it).
fn parse_output(text: &str) -> Option<Output> {
    let ints = |inner: &str| -> Option<Vec<i64>> {
        inner
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| p.parse().ok())
            .collect()
    };
    let (name, rest) = text.split_once('(').unwrap_or((text, ")"));
    let inner = rest.strip_suffix(')')?;
    match name {
        "Ok" => Some(Output::Ok),
        "Deleted" => inner.parse().ok().map(Output::Deleted),
        "Int" => inner.parse().ok().map(Output::Int),
        "Pair" => match ints(inner)?.as_slice() {
            [a, b] => Some(Output::Pair(*a, *b)),
            _ => None,
        },
        "Balances" => ints(inner.strip_prefix('[')?.strip_suffix(']')?).map(Output::Balances),
        "Value" if inner == "None" => Some(Output::Value(None)),
        // The value is a Debug-quoted string; ours never need escapes.
        "Value" => inner
            .strip_prefix("Some(\"")?
            .strip_suffix("\")")
            .map(|v| Output::Value(Some(v.to_string()))),
        _ => None,
    }
}

// ---------------------------------------------------------------- models

/// A counter per key: INCR returns the new value; GET reads it (absent is 0).
#[derive(Clone, Copy, Debug, Default)]
pub struct CounterModel;

/// A counter operation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CounterInput {
    /// `INCR`.
    Incr,
    /// `GET`.
    Get,
}

impl Model for CounterModel {
    type State = i64;
    type Input = CounterInput;
    type Output = i64;

    fn init(&self) -> i64 {
        0
    }

    fn same_effect(&self, a: &CounterInput, b: &CounterInput) -> bool {
        a == b
    }

    fn step(&self, state: &i64, input: &CounterInput, output: Option<&i64>) -> Option<i64> {
        match (input, output) {
            (CounterInput::Incr, None) => Some(state + 1),
            (CounterInput::Incr, Some(&v)) => (v == state + 1).then_some(v),
            (CounterInput::Get, None) => Some(*state),
            (CounterInput::Get, Some(&v)) => (v == *state).then_some(v),
        }
    }
}

/// [`ACCOUNTS`] balances, all starting at 0; transfers move an amount atomically.
#[derive(Clone, Copy, Debug, Default)]
pub struct BankModel;

/// A bank operation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BankInput {
    /// Move `amount` from `from` to `to`.
    Transfer {
        /// Debited account.
        from: usize,
        /// Credited account.
        to: usize,
        /// Amount.
        amount: i64,
    },
    /// Read every balance atomically.
    Read,
}

/// A bank operation's result.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BankOutput {
    /// The two new balances.
    Transferred(i64, i64),
    /// A transfer whose reply was lost but which took effect (its marker key
    /// was there after the heal): any balances.
    Applied,
    /// Every balance.
    Balances(Vec<i64>),
}

impl Model for BankModel {
    type State = [i64; ACCOUNTS];
    type Input = BankInput;
    type Output = BankOutput;

    fn init(&self) -> [i64; ACCOUNTS] {
        [0; ACCOUNTS]
    }

    fn same_effect(&self, a: &BankInput, b: &BankInput) -> bool {
        a == b
    }

    fn step(
        &self,
        state: &[i64; ACCOUNTS],
        input: &BankInput,
        output: Option<&BankOutput>,
    ) -> Option<[i64; ACCOUNTS]> {
        match input {
            BankInput::Transfer { from, to, amount } => {
                let mut next = *state;
                next[*from] -= amount;
                next[*to] += amount;
                match output {
                    None | Some(BankOutput::Applied) => Some(next),
                    Some(BankOutput::Transferred(a, b)) => {
                        (*a == next[*from] && *b == next[*to]).then_some(next)
                    }
                    Some(BankOutput::Balances(_)) => None,
                }
            }
            BankInput::Read => match output {
                None => Some(*state),
                Some(BankOutput::Balances(b)) => {
                    (b.as_slice() == state.as_slice()).then_some(*state)
                }
                Some(BankOutput::Transferred(..) | BankOutput::Applied) => None,
            },
        }
    }
}

// ---------------------------------------------------------------- checks

/// One workload's linearizability check.
#[derive(Debug, Clone)]
pub struct LinVerdict {
    /// The workload.
    pub name: String,
    /// Operations checked.
    pub ops: usize,
    /// The checker's verdict.
    pub result: CheckResult,
    /// How long the check took.
    pub took: Duration,
}

/// The verdict of every check on one history.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Per workload: the linearizability check's result.
    pub lin: Vec<LinVerdict>,
    /// Acknowledged writes missing at the end, described.
    pub lost: Vec<String>,
    /// Session-order violations (a client not seeing its own writes), described.
    pub session: Vec<String>,
    /// Writes that failed with a "not applied" error but took effect, described.
    pub phantom: Vec<String>,
}

impl Verdict {
    /// True if every history is linearizable (not merely "unknown") and nothing
    /// else failed.
    pub fn ok(&self) -> bool {
        self.linearizable()
            && self.lost.is_empty()
            && self.session.is_empty()
            && self.phantom.is_empty()
    }

    /// True if every linearizability check said `Linearizable`.
    pub fn linearizable(&self) -> bool {
        self.lin.iter().all(|l| l.result.is_linearizable())
    }
}

fn ret_of<O>(r: &Record, f: impl Fn(&Output) -> Option<O>) -> Option<Option<(u64, O)>> {
    match &r.outcome {
        Outcome::Ok(o) => f(o).map(|o| Some((r.ret, o))),
        Outcome::Unknown(_) => Some(None),
        Outcome::Fail(_) => None,
    }
}

/// Register history (SET/GET/DEL on `reg:*`); unknown GETs are left out (they
/// constrain nothing).
pub fn register_history(
    records: &[Record],
) -> Vec<Operation<(Vec<u8>, RegisterInput), RegisterOutput>> {
    let mut ops = Vec::new();
    for r in records {
        let (key, input) = match &r.input {
            Input::Set { key, value } => (*key, RegisterInput::Set(value.clone().into_bytes())),
            Input::Get { key } => (*key, RegisterInput::Get),
            Input::Del { key } => (*key, RegisterInput::Del),
            _ => continue,
        };
        if matches!(input, RegisterInput::Get) && !r.is_ok() {
            continue;
        }
        let Some(ret) = ret_of(r, |o| match o {
            Output::Ok => Some(RegisterOutput::Ok),
            Output::Value(v) => Some(RegisterOutput::Value(v.clone().map(String::into_bytes))),
            Output::Deleted(n) => Some(RegisterOutput::Deleted(*n)),
            _ => None,
        }) else {
            continue;
        };
        ops.push(Operation {
            client: r.client,
            input: (vec![key], input),
            call: r.call,
            ret,
        });
    }
    ops
}

/// Counter history (INCR/GET on `ctr:*`), keyed by counter.
pub fn counter_history(records: &[Record]) -> Vec<Operation<(u8, CounterInput), i64>> {
    let mut ops = Vec::new();
    for r in records {
        let (key, input) = match &r.input {
            Input::Incr { key } => (*key, CounterInput::Incr),
            Input::ReadCounter { key } => (*key, CounterInput::Get),
            _ => continue,
        };
        if input == CounterInput::Get && !r.is_ok() {
            continue;
        }
        let Some(ret) = ret_of(r, |o| match o {
            Output::Int(n) => Some(*n),
            _ => None,
        }) else {
            continue;
        };
        ops.push(Operation {
            client: r.client,
            input: (key, input),
            call: r.call,
            ret,
        });
    }
    ops
}

/// The marker reads after the heal ([`Input::ReadTx`]): marker key → (when the
/// read returned, whether the marker was there).
fn marker_reads(records: &[Record]) -> HashMap<&str, (u64, bool)> {
    records
        .iter()
        .filter_map(|r| match (&r.input, &r.outcome) {
            (Input::ReadTx { key }, Outcome::Ok(Output::Value(v))) => {
                Some((key.as_str(), (r.ret, v.is_some())))
            }
            _ => None,
        })
        .collect()
}

/// Bank history (transfers and atomic reads).
///
/// A transfer with an unknown outcome is resolved by its marker read after the
/// heal: present, it took effect at some point after its call (completed, any
/// result, returning when the marker was read); absent, it never took effect
/// before the last read of the run and is left out. Unresolved ones stay unknown.
/// Without this, every unknown transfer that never took effect stays pending to the
/// end of the history and the search tries every subset of them at every read.
pub fn bank_history(records: &[Record]) -> Vec<Operation<BankInput, BankOutput>> {
    let markers = marker_reads(records);
    let mut ops = Vec::new();
    for r in records {
        let (input, tx) = match &r.input {
            Input::Transfer {
                from,
                to,
                amount,
                tx,
            } => (
                BankInput::Transfer {
                    from: usize::from(*from),
                    to: usize::from(*to),
                    amount: *amount,
                },
                Some(tx.as_str()),
            ),
            Input::ReadBank => (BankInput::Read, None),
            _ => continue,
        };
        if input == BankInput::Read && !r.is_ok() {
            continue;
        }
        let Some(mut ret) = ret_of(r, |o| match o {
            Output::Pair(a, b) => Some(BankOutput::Transferred(*a, *b)),
            Output::Balances(b) => Some(BankOutput::Balances(b.clone())),
            _ => None,
        }) else {
            continue;
        };
        if ret.is_none() {
            match tx.and_then(|tx| markers.get(tx)) {
                Some(&(_, false)) => continue,
                Some(&(at, true)) => ret = Some((at, BankOutput::Applied)),
                None => {}
            }
        }
        ops.push(Operation {
            client: r.client,
            input,
            call: r.call,
            ret,
        });
    }
    ops
}

/// Transfers that failed with an error promising they were not applied
/// (`CLUSTERDOWN`, `TRYAGAIN`, …) but whose marker was there after the heal.
pub fn phantom_transfers(records: &[Record]) -> Vec<String> {
    let markers = marker_reads(records);
    records
        .iter()
        .filter_map(|r| match (&r.input, &r.outcome) {
            (Input::Transfer { tx, .. }, Outcome::Fail(e))
                if markers.get(tx.as_str()).is_some_and(|m| m.1) =>
            {
                Some(format!(
                    "{:?} by client {} failed with {e:?} (call {} ns) but took effect: its marker is there after the heal",
                    r.input, r.client, r.call
                ))
            }
            _ => None,
        })
        .collect()
}

/// A counter keyed by index, for [`lincheck::check_partitioned`].
struct KeyedCounter;

impl Model for KeyedCounter {
    type State = i64;
    type Input = (u8, CounterInput);
    type Output = i64;
    fn init(&self) -> i64 {
        0
    }
    fn same_effect(&self, a: &(u8, CounterInput), b: &(u8, CounterInput)) -> bool {
        a == b
    }
    fn step(&self, s: &i64, (_, i): &(u8, CounterInput), o: Option<&i64>) -> Option<i64> {
        CounterModel.step(s, i, o)
    }
}

/// Run every check on `records` (which must include the final reads after the
/// heal, with client ids ≥ [`FINAL_CLIENT_BASE`]); `unique_missing` lists the
/// acknowledged [`Input::SetUnique`] keys absent after the heal. `max_steps` bounds each
/// linearizability search (per partition).
pub fn check_all(records: &[Record], unique_missing: &[String], max_steps: u64) -> Verdict {
    let mut lin = Vec::new();
    let mut timed = |name: &str, ops: usize, check: &dyn Fn() -> CheckResult| {
        if ops > 0 {
            let started = Instant::now();
            let result = check();
            lin.push(LinVerdict {
                name: name.to_string(),
                ops,
                result,
                took: started.elapsed(),
            });
        }
    };
    let regs = register_history(records);
    timed("registers (SET/GET/DEL)", regs.len(), &|| {
        lincheck::check_registers(&regs, max_steps)
    });
    let ctrs = counter_history(records);
    timed("counters (INCR/GET)", ctrs.len(), &|| {
        lincheck::check_partitioned(&KeyedCounter, &ctrs, |(k, _)| *k, max_steps)
    });
    let bank = bank_history(records);
    timed("bank (MULTI/EXEC transfers)", bank.len(), &|| {
        lincheck::check(&BankModel, &bank, max_steps)
    });
    let mut lost = lost_writes(records);
    lost.extend(
        unique_missing
            .iter()
            .map(|k| format!("acknowledged SET {k} 1 is missing after the heal")),
    );
    Verdict {
        lin,
        lost,
        session: session_violations(records),
        phantom: phantom_transfers(records),
    }
}

/// Acknowledged writes the final reads do not reflect: a counter below its number
/// of acknowledged INCRs; bank balances that do not sum to 0; a register whose
/// final value is older than its last acknowledged write.
pub fn lost_writes(records: &[Record]) -> Vec<String> {
    let mut out = Vec::new();
    let finals: Vec<&Record> = records
        .iter()
        .filter(|r| r.client >= FINAL_CLIENT_BASE && r.is_ok())
        .collect();
    // Counters.
    let mut acked_incrs: HashMap<u8, i64> = HashMap::new();
    let mut max_incr: HashMap<u8, i64> = HashMap::new();
    for r in records {
        if let (Input::Incr { key }, Outcome::Ok(Output::Int(v))) = (&r.input, &r.outcome) {
            *acked_incrs.entry(*key).or_default() += 1;
            let m = max_incr.entry(*key).or_default();
            *m = (*m).max(*v);
        }
    }
    for r in &finals {
        if let (Input::ReadCounter { key }, Outcome::Ok(Output::Int(v))) = (&r.input, &r.outcome) {
            let acked = acked_incrs.get(key).copied().unwrap_or(0);
            let seen = max_incr.get(key).copied().unwrap_or(0);
            if *v < acked || *v < seen {
                out.push(format!(
                    "counter ctr:{key} reads {v} on node {} after the heal, but {acked} INCRs were acknowledged (highest result {seen})",
                    r.node
                ));
            }
        }
        if let (Input::ReadBank, Outcome::Ok(Output::Balances(b))) = (&r.input, &r.outcome) {
            let sum: i64 = b.iter().sum();
            if sum != 0 {
                out.push(format!(
                    "bank balances {b:?} on node {} sum to {sum}, not 0",
                    r.node
                ));
            }
        }
    }
    // Registers: the final value must not come from a write that completed
    // before the last acknowledged write to that key was invoked.
    let mut writes: HashMap<u8, Vec<&Record>> = HashMap::new();
    for r in records.iter().filter(|r| r.client < FINAL_CLIENT_BASE) {
        if let Input::Set { key, .. } | Input::Del { key } = &r.input {
            writes.entry(*key).or_default().push(r);
        }
    }
    for r in &finals {
        let (Input::Get { key }, Outcome::Ok(Output::Value(v))) = (&r.input, &r.outcome) else {
            continue;
        };
        let Some(ws) = writes.get(key) else { continue };
        let Some(last_acked) = ws.iter().filter(|w| w.is_ok()).max_by_key(|w| w.call) else {
            continue;
        };
        // Writes that could be the last one applied: not completed before
        // `last_acked` was invoked.
        let candidates: Vec<&&Record> = ws
            .iter()
            .filter(|w| {
                !(matches!(w.outcome, Outcome::Fail(_)) || w.is_ok() && w.ret < last_acked.call)
            })
            .collect();
        let explained = candidates.iter().any(|w| match (&w.input, v) {
            (Input::Set { value, .. }, Some(got)) => value == got,
            (Input::Del { .. }, None) => true,
            _ => false,
        });
        if !explained {
            out.push(format!(
                "register reg:{key} reads {v:?} on node {} after the heal; the last acknowledged write was {:?} (client {}, call {} ns)",
                r.node, last_acked.input, last_acked.client, last_acked.call
            ));
        }
    }
    out
}

/// Each client sees its own writes: after a client's acknowledged write to a key,
/// its later reads of that key must not show a value from a write that had
/// completed before its own write began; its counter observations never go down.
pub fn session_violations(records: &[Record]) -> Vec<String> {
    let mut out = Vec::new();
    // Register writes by key and value (values are unique).
    let mut set_of: HashMap<(u8, &str), &Record> = HashMap::new();
    let mut dels: HashMap<u8, Vec<&Record>> = HashMap::new();
    for r in records {
        match &r.input {
            Input::Set { key, value } => {
                set_of.insert((*key, value.as_str()), r);
            }
            Input::Del { key } => dels.entry(*key).or_default().push(r),
            _ => {}
        }
    }
    let mut by_client: BTreeMap<u64, Vec<&Record>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.client < FINAL_CLIENT_BASE) {
        by_client.entry(r.client).or_default().push(r);
    }
    for (client, ops) in by_client {
        let mut own_write: HashMap<u8, &Record> = HashMap::new();
        let mut counter_seen: HashMap<u8, i64> = HashMap::new();
        for r in ops {
            match (&r.input, &r.outcome) {
                (Input::Set { key, .. } | Input::Del { key }, Outcome::Ok(_)) => {
                    own_write.insert(*key, r);
                }
                (Input::Get { key }, Outcome::Ok(Output::Value(v))) => {
                    let Some(own) = own_write.get(key) else {
                        continue;
                    };
                    if own.input
                        == (Input::Set {
                            key: *key,
                            value: v.clone().unwrap_or_default(),
                        })
                        && v.is_some()
                    {
                        continue;
                    }
                    let newer_possible = match v {
                        Some(value) => set_of
                            .get(&(*key, value.as_str()))
                            .is_some_and(|w| !(w.is_ok() && w.ret < own.call)),
                        None => dels.get(key).is_some_and(|ds| {
                            ds.iter().any(|d| {
                                !(matches!(d.outcome, Outcome::Fail(_))
                                    || d.is_ok() && d.ret < own.call)
                            })
                        }),
                    };
                    if !newer_possible {
                        out.push(format!(
                            "client {client} wrote {:?} (acknowledged at {} ns) then read reg:{key} = {v:?} at {} ns, a value overwritten before its write began",
                            own.input, own.ret, r.ret
                        ));
                    }
                }
                (Input::Incr { key } | Input::ReadCounter { key }, Outcome::Ok(Output::Int(v))) => {
                    let seen = counter_seen.entry(*key).or_insert(0);
                    if *v < *seen {
                        out.push(format!(
                            "client {client} saw ctr:{key} = {seen}, later {v} ({:?} at {} ns)",
                            r.input, r.ret
                        ));
                    }
                    *seen = (*seen).max(*v);
                }
                _ => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(client: u64, input: Input, call: u64, ret: u64, outcome: Outcome) -> Record {
        Record {
            client,
            node: 0,
            input,
            call,
            ret,
            outcome,
        }
    }

    #[test]
    fn counter_model_rejects_a_lost_increment() {
        let h = vec![
            rec(
                1,
                Input::Incr { key: 0 },
                0,
                10,
                Outcome::Ok(Output::Int(1)),
            ),
            rec(
                2,
                Input::ReadCounter { key: 0 },
                20,
                30,
                Outcome::Ok(Output::Int(0)),
            ),
        ];
        let ops = counter_history(&h);
        let r = lincheck::check_partitioned(&KeyedCounter, &ops, |(k, _)| *k, 1000);
        assert!(!r.is_linearizable(), "{r:?}");
        assert!(!session_violations(&h).is_empty() || h[0].client != h[1].client);
    }

    #[test]
    fn bank_model_accepts_unknown_transfer_either_way() {
        let t = Input::Transfer {
            from: 0,
            to: 1,
            amount: 5,
            tx: "tx:1".into(),
        };
        let h = vec![
            rec(1, t, 0, 10, Outcome::Unknown("timeout".into())),
            rec(
                2,
                Input::ReadBank,
                20,
                30,
                Outcome::Ok(Output::Balances(vec![-5, 5, 0, 0])),
            ),
        ];
        assert!(lincheck::check(&BankModel, &bank_history(&h), 1000).is_linearizable());
        let mut h2 = h.clone();
        h2[1].outcome = Outcome::Ok(Output::Balances(vec![0, 0, 0, 0]));
        assert!(lincheck::check(&BankModel, &bank_history(&h2), 1000).is_linearizable());
        h2[1].outcome = Outcome::Ok(Output::Balances(vec![-5, 0, 0, 0]));
        assert!(!lincheck::check(&BankModel, &bank_history(&h2), 1000).is_linearizable());
    }

    fn marker(present: bool, at: u64) -> Record {
        rec(
            FINAL_CLIENT_BASE,
            Input::ReadTx { key: "tx:1".into() },
            at,
            at + 1,
            Outcome::Ok(Output::Value(present.then(|| "1".to_string()))),
        )
    }

    #[test]
    fn marker_reads_resolve_unknown_transfers() {
        let t = Input::Transfer {
            from: 0,
            to: 1,
            amount: 5,
            tx: "tx:1".into(),
        };
        let read = |b: Vec<i64>| rec(2, Input::ReadBank, 20, 30, Outcome::Ok(Output::Balances(b)));
        let unknown = rec(1, t.clone(), 0, 10, Outcome::Unknown("timeout".into()));
        let check = |h: &[Record]| lincheck::check(&BankModel, &bank_history(h), 1000);
        // Absent marker: the transfer never happened, so a read showing it is wrong.
        let h = [unknown.clone(), read(vec![-5, 5, 0, 0]), marker(false, 40)];
        assert_eq!(bank_history(&h).len(), 1);
        assert!(!check(&h).is_linearizable());
        let h = [unknown.clone(), read(vec![0, 0, 0, 0]), marker(false, 40)];
        assert!(check(&h).is_linearizable());
        // Present marker: it happened before the marker read, maybe after the read.
        let h = [unknown.clone(), read(vec![-5, 5, 0, 0]), marker(true, 40)];
        assert!(check(&h).is_linearizable());
        let h = [unknown.clone(), read(vec![0, 0, 0, 0]), marker(true, 40)];
        assert!(check(&h).is_linearizable());
        // ...but then a later read must show it.
        let late = rec(
            3,
            Input::ReadBank,
            50,
            60,
            Outcome::Ok(Output::Balances(vec![0; 4])),
        );
        let h = [unknown, read(vec![0, 0, 0, 0]), marker(true, 40), late];
        assert!(!check(&h).is_linearizable());
        // A transfer that failed "for certain" must not have a marker.
        let failed = rec(1, t, 0, 10, Outcome::Fail("CLUSTERDOWN".into()));
        assert_eq!(
            phantom_transfers(&[failed.clone(), marker(true, 40)]).len(),
            1
        );
        assert!(phantom_transfers(&[failed, marker(false, 40)]).is_empty());
    }

    #[test]
    fn session_check_flags_a_stale_read_of_own_write() {
        let h = vec![
            rec(
                2,
                Input::Set {
                    key: 0,
                    value: "a".into(),
                },
                0,
                5,
                Outcome::Ok(Output::Ok),
            ),
            rec(
                1,
                Input::Set {
                    key: 0,
                    value: "b".into(),
                },
                10,
                20,
                Outcome::Ok(Output::Ok),
            ),
            rec(
                1,
                Input::Get { key: 0 },
                30,
                40,
                Outcome::Ok(Output::Value(Some("a".into()))),
            ),
        ];
        assert_eq!(
            session_violations(&h).len(),
            1,
            "{:?}",
            session_violations(&h)
        );
        let finals = vec![
            h[0].clone(),
            h[1].clone(),
            rec(
                FINAL_CLIENT_BASE,
                Input::Get { key: 0 },
                50,
                60,
                Outcome::Ok(Output::Value(Some("a".into()))),
            ),
        ];
        assert_eq!(lost_writes(&finals).len(), 1);
    }
}
