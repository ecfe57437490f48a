//! Client histories from chaos runs and the checks run on them: linearizability
//! (with [`crate::lincheck`] = `dkv::lincheck`, one model per workload), no acknowledged write lost, and
//! session order (each client sees its own writes).
//!
//! Timestamps are nanoseconds since the run started, from one monotonic clock.

use std::collections::{BTreeMap, HashMap};

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
    /// `MULTI; INCRBY acct:<from> -amount; INCRBY acct:<to> amount; EXEC`.
    Transfer {
        /// Debited account.
        from: u8,
        /// Credited account.
        to: u8,
        /// Amount moved.
        amount: i64,
    },
    /// `MULTI; GET acct:0; …; GET acct:<ACCOUNTS-1>; EXEC`.
    ReadBank,
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
            Input::Get { .. } | Input::ReadCounter { .. } | Input::ReadBank
        )
    }

    fn to_json(&self) -> Value {
        match self {
            Input::Set { key, value } => json!({"f": "set", "key": key, "value": value}),
            Input::Get { key } => json!({"f": "get", "key": key}),
            Input::Del { key } => json!({"f": "del", "key": key}),
            Input::Incr { key } => json!({"f": "incr", "key": key}),
            Input::ReadCounter { key } => json!({"f": "read-counter", "key": key}),
            Input::Transfer { from, to, amount } => {
                json!({"f": "transfer", "from": from, "to": to, "amount": amount})
            }
            Input::ReadBank => json!({"f": "read-bank"}),
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
                    None => Some(next),
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
                Some(BankOutput::Transferred(..)) => None,
            },
        }
    }
}

// ---------------------------------------------------------------- checks

/// The verdict of every check on one history.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Per workload: (name, operations checked, result).
    pub lin: Vec<(String, usize, CheckResult)>,
    /// Acknowledged writes missing at the end, described.
    pub lost: Vec<String>,
    /// Session-order violations (a client not seeing its own writes), described.
    pub session: Vec<String>,
}

impl Verdict {
    /// True if every history is linearizable (not merely "unknown") and nothing
    /// else failed.
    pub fn ok(&self) -> bool {
        self.linearizable() && self.lost.is_empty() && self.session.is_empty()
    }

    /// True if every linearizability check said `Linearizable`.
    pub fn linearizable(&self) -> bool {
        self.lin.iter().all(|(_, _, r)| r.is_linearizable())
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

/// Bank history (transfers and atomic reads).
pub fn bank_history(records: &[Record]) -> Vec<Operation<BankInput, BankOutput>> {
    let mut ops = Vec::new();
    for r in records {
        let input = match &r.input {
            Input::Transfer { from, to, amount } => BankInput::Transfer {
                from: usize::from(*from),
                to: usize::from(*to),
                amount: *amount,
            },
            Input::ReadBank => BankInput::Read,
            _ => continue,
        };
        if input == BankInput::Read && !r.is_ok() {
            continue;
        }
        let Some(ret) = ret_of(r, |o| match o {
            Output::Pair(a, b) => Some(BankOutput::Transferred(*a, *b)),
            Output::Balances(b) => Some(BankOutput::Balances(b.clone())),
            _ => None,
        }) else {
            continue;
        };
        ops.push(Operation {
            client: r.client,
            input,
            call: r.call,
            ret,
        });
    }
    ops
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
    let regs = register_history(records);
    if !regs.is_empty() {
        lin.push((
            "registers (SET/GET/DEL)".to_string(),
            regs.len(),
            lincheck::check_registers(&regs, max_steps),
        ));
    }
    let ctrs = counter_history(records);
    if !ctrs.is_empty() {
        lin.push((
            "counters (INCR/GET)".to_string(),
            ctrs.len(),
            lincheck::check_partitioned(&KeyedCounter, &ctrs, |(k, _)| *k, max_steps),
        ));
    }
    let bank = bank_history(records);
    if !bank.is_empty() {
        lin.push((
            "bank (MULTI/EXEC transfers)".to_string(),
            bank.len(),
            lincheck::check(&BankModel, &bank, max_steps),
        ));
    }
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
