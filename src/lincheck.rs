//! A linearizability checker for client histories (pure: no I/O, no clock).
//!
//! # What it checks
//!
//! A history is a set of [`Operation`]s, each with the time it was called and,
//! if known, the time it returned and its result. It is *linearizable* when
//! every operation can be given a single point in time between its call and its
//! return such that executing the operations one at a time, in that order, on
//! the sequential [`Model`] produces exactly the recorded results.
//!
//! Operations whose outcome is unknown (`ret: None`: a timeout, a lost leader)
//! may take effect at any time after their call or never, with any result.
//!
//! # How
//!
//! Wing & Gong's search with Lowe's just-in-time linearization and memoization
//! (as in Porcupine/Knossos): the calls and returns are laid out in time order;
//! the search repeatedly linearizes a pending call whose effect the model
//! accepts, and backtracks when it reaches the return of an operation it has not
//! linearized yet. A set of (linearized operations, model state) pairs already
//! explored prunes the search; a step budget bounds it ([`CheckResult::Unknown`]).
//! The history is linearizable as soon as every *completed* operation is
//! linearized (unknown ones left over are those that never took effect).
//!
//! Equal timestamps count as concurrent (calls sort before returns), so the
//! checker never reports a violation that depends on a tie.
//!
//! [`check_partitioned`] checks independent keys separately (linearizability
//! is compositional), which keeps each search small.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::hash::Hash;

/// A sequential specification of the object under test.
pub trait Model {
    /// The object's state.
    type State: Clone + Eq + Hash + Debug;
    /// An operation's input.
    type Input: Clone + Debug;
    /// An operation's result.
    type Output: Clone + PartialEq + Debug;
    /// The initial state.
    fn init(&self) -> Self::State;
    /// The state after `input` takes effect in `state` with result `output`, or
    /// None if `output` is impossible. `output == None` means the outcome is
    /// unknown: accept any result.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;
}

/// One client operation in a history.
///
/// `call`/`ret` are logical or real timestamps (any monotonic u64, e.g. ns
/// since the test started). `ret: None` is an unknown outcome: the operation may
/// have taken effect at any time after `call`, or never.
#[derive(Clone, Debug)]
pub struct Operation<I, O> {
    /// The client that issued it (for reports only).
    pub client: u64,
    /// What was asked.
    pub input: I,
    /// When it was called.
    pub call: u64,
    /// When it returned and with what, if known.
    pub ret: Option<(u64, O)>,
}

/// The verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckResult {
    /// Some order of the operations explains every result.
    Linearizable,
    /// No order does; `reason` names the operations involved.
    NotLinearizable {
        /// A short description of where the search got stuck.
        reason: String,
    },
    /// The search budget ran out before a verdict.
    Unknown {
        /// Which history (partition) exhausted the budget.
        reason: String,
    },
}

impl CheckResult {
    /// True for [`CheckResult::Linearizable`].
    pub fn is_linearizable(&self) -> bool {
        matches!(self, CheckResult::Linearizable)
    }
}

/// One call or return event in the time-ordered list.
#[derive(Clone, Copy, Debug)]
struct Event {
    op: usize,
    is_call: bool,
    /// For a call: the index of its return event.
    partner: usize,
    prev: usize,
    next: usize,
}

/// Index of the list's sentinel head (events start at 1).
const HEAD: usize = 0;
/// "No event" (end of list).
const NIL: usize = usize::MAX;

/// A doubly linked list of events supporting the lift/unlift of a call and its
/// return in O(1) (the "dancing links" of Lowe's algorithm).
struct EventList {
    events: Vec<Event>,
}

impl EventList {
    fn build<I, O>(history: &[Operation<I, O>]) -> EventList {
        // (time, is_return, op, rank): calls sort before returns at equal time;
        // unknown returns go after everything.
        let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(history.len() * 2);
        for (i, op) in history.iter().enumerate() {
            order.push((op.call, false, i));
            let ret_time = op.ret.as_ref().map_or(u64::MAX, |(t, _)| *t);
            order.push((ret_time.max(op.call), true, i));
        }
        order.sort_unstable();
        let mut events = vec![Event {
            op: usize::MAX,
            is_call: false,
            partner: NIL,
            prev: NIL,
            next: NIL,
        }];
        let mut call_pos = vec![NIL; history.len()];
        let mut ret_pos = vec![NIL; history.len()];
        for (n, &(_, is_ret, op)) in order.iter().enumerate() {
            let pos = n + 1;
            events.push(Event {
                op,
                is_call: !is_ret,
                partner: NIL,
                prev: pos - 1,
                next: if n + 1 < order.len() { pos + 1 } else { NIL },
            });
            if is_ret {
                ret_pos[op] = pos;
            } else {
                call_pos[op] = pos;
            }
        }
        events[HEAD].next = if order.is_empty() { NIL } else { 1 };
        for op in 0..history.len() {
            events[call_pos[op]].partner = ret_pos[op];
        }
        EventList { events }
    }

    fn unlink(&mut self, pos: usize) {
        let Event { prev, next, .. } = self.events[pos];
        self.events[prev].next = next;
        if next != NIL {
            self.events[next].prev = prev;
        }
    }

    fn relink(&mut self, pos: usize) {
        let Event { prev, next, .. } = self.events[pos];
        self.events[prev].next = pos;
        if next != NIL {
            self.events[next].prev = pos;
        }
    }

    /// Removes a call and its return (return first, so relinking in reverse
    /// order restores the list exactly).
    fn lift(&mut self, call: usize) {
        let ret = self.events[call].partner;
        self.unlink(call);
        self.unlink(ret);
    }

    fn unlift(&mut self, call: usize) {
        let ret = self.events[call].partner;
        self.relink(ret);
        self.relink(call);
    }
}

/// A fixed-size bit set of linearized operations.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// Checks one history against `model` with at most `max_steps` search steps.
pub fn check<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    max_steps: u64,
) -> CheckResult {
    let completed = history.iter().filter(|op| op.ret.is_some()).count();
    if completed == 0 {
        return CheckResult::Linearizable;
    }
    let mut list = EventList::build(history);
    let mut linearized = Bits::new(history.len());
    let mut seen: HashSet<(Bits, M::State)> = HashSet::new();
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut state = model.init();
    let mut completed_left = completed;
    // The deepest point reached, for the report: (completed ops linearized,
    // the op whose return blocked the search there, the state there).
    let mut best: Option<(usize, usize, M::State)> = None;
    let mut steps: u64 = 0;
    let mut entry = list.events[HEAD].next;
    loop {
        steps += 1;
        if steps > max_steps {
            return CheckResult::Unknown {
                reason: format!(
                    "search budget of {max_steps} steps exhausted on {} ops",
                    history.len()
                ),
            };
        }
        if completed_left == 0 {
            return CheckResult::Linearizable;
        }
        if entry == NIL {
            // Only the returns of completed ops can end the list before all are
            // linearized, and those are handled below; unreachable in practice.
            unreachable!("event list ended with completed operations pending");
        }
        let event = list.events[entry];
        if event.is_call {
            let op = &history[event.op];
            let output = op.ret.as_ref().map(|(_, o)| o);
            let next_state = model.step(&state, &op.input, output);
            let mut advanced = false;
            if let Some(next_state) = next_state {
                let mut bits = linearized.clone();
                bits.set(event.op);
                if seen.insert((bits.clone(), next_state.clone())) {
                    stack.push((entry, std::mem::replace(&mut state, next_state)));
                    linearized = bits;
                    if op.ret.is_some() {
                        completed_left -= 1;
                    }
                    list.lift(entry);
                    entry = list.events[HEAD].next;
                    advanced = true;
                }
            }
            if !advanced {
                entry = event.next;
            }
        } else {
            // The return of an op not yet linearized: its window has closed.
            let depth = completed - completed_left;
            if best.as_ref().is_none_or(|(d, _, _)| depth > *d) {
                best = Some((depth, event.op, state.clone()));
            }
            let Some((call, previous)) = stack.pop() else {
                let (depth, blocked, at_state) = best.expect("set just above");
                let op = &history[blocked];
                return CheckResult::NotLinearizable {
                    reason: format!(
                        "linearized at most {depth} of {completed} completed ops; then client {} \
                         {:?} -> {:?} (call {}, ret {:?}) fits no order, model state {:?}",
                        op.client,
                        op.input,
                        op.ret.as_ref().map(|(_, o)| o),
                        op.call,
                        op.ret.as_ref().map(|(t, _)| t),
                        at_state,
                    ),
                };
            };
            let undone = list.events[call].op;
            if history[undone].ret.is_some() {
                completed_left += 1;
            }
            linearized.clear(undone);
            state = previous;
            list.unlift(call);
            entry = list.events[call].next;
        }
    }
}

/// The operations of one model's history.
type History<M> = Vec<Operation<<M as Model>::Input, <M as Model>::Output>>;

/// Checks each partition of the history separately: `key` maps an input to
/// the independent object (e.g. the Redis key) it touches. The budget applies
/// per partition. The first non-linearizable partition is reported (its reason
/// names the partition by its first op's input); otherwise any partition
/// whose budget ran out makes the result [`CheckResult::Unknown`].
pub fn check_partitioned<M: Model, K: Eq + Hash + Clone>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    key: impl Fn(&M::Input) -> K,
    max_steps: u64,
) -> CheckResult {
    let mut order: Vec<K> = Vec::new();
    let mut parts: HashMap<K, History<M>> = HashMap::new();
    for op in history {
        let k = key(&op.input);
        let part = parts.entry(k.clone()).or_insert_with(|| {
            order.push(k);
            Vec::new()
        });
        part.push(op.clone());
    }
    let mut unknown = None;
    for k in order {
        let part = &parts[&k];
        match check(model, part, max_steps) {
            CheckResult::Linearizable => {}
            CheckResult::NotLinearizable { reason } => {
                return CheckResult::NotLinearizable {
                    reason: format!("partition of {:?}: {reason}", part[0].input),
                }
            }
            CheckResult::Unknown { reason } => {
                unknown.get_or_insert(CheckResult::Unknown {
                    reason: format!("partition of {:?}: {reason}", part[0].input),
                });
            }
        }
    }
    unknown.unwrap_or(CheckResult::Linearizable)
}

/// A register per key for GET/SET/DEL: values are bytes, absent is `None`.
///
/// As a [`Model`] it is one register (input [`RegisterInput`], state the
/// current value); use [`KeyedRegisterModel`] (input `(key, RegisterInput)`)
/// with [`check_partitioned`] or [`check_registers`] for a key space.
#[derive(Clone, Copy, Debug, Default)]
pub struct RegisterModel;

/// An operation on one register.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum RegisterInput {
    /// `GET`.
    Get,
    /// `SET value`.
    Set(Vec<u8>),
    /// `DEL` (of this one key).
    Del,
}

/// A register operation's result.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum RegisterOutput {
    /// `GET`'s answer (None: absent).
    Value(Option<Vec<u8>>),
    /// `SET`'s `+OK`.
    Ok,
    /// `DEL`'s count of removed keys (0 or 1 for one key).
    Deleted(i64),
}

/// Bytes shown as (lossy) text in reports.
struct Text<'a>(&'a [u8]);

impl Debug for Text<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.0))
    }
}

impl Debug for RegisterInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegisterInput::Get => write!(f, "GET"),
            RegisterInput::Set(v) => write!(f, "SET {:?}", Text(v)),
            RegisterInput::Del => write!(f, "DEL"),
        }
    }
}

impl Debug for RegisterOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegisterOutput::Value(Some(v)) => write!(f, "{:?}", Text(v)),
            RegisterOutput::Value(None) => write!(f, "nil"),
            RegisterOutput::Ok => write!(f, "OK"),
            RegisterOutput::Deleted(n) => write!(f, "(integer) {n}"),
        }
    }
}

impl RegisterModel {
    fn apply(
        state: &Option<Vec<u8>>,
        input: &RegisterInput,
        output: Option<&RegisterOutput>,
    ) -> Option<Option<Vec<u8>>> {
        match (input, output) {
            (RegisterInput::Get, None) => Some(state.clone()),
            (RegisterInput::Get, Some(RegisterOutput::Value(v))) => {
                (v == state).then(|| state.clone())
            }
            (RegisterInput::Set(v), None | Some(RegisterOutput::Ok)) => Some(Some(v.clone())),
            (RegisterInput::Del, None) => Some(None),
            (RegisterInput::Del, Some(RegisterOutput::Deleted(n))) => {
                (*n == i64::from(state.is_some())).then_some(None)
            }
            _ => None,
        }
    }
}

impl Model for RegisterModel {
    type State = Option<Vec<u8>>;
    type Input = RegisterInput;
    type Output = RegisterOutput;

    fn init(&self) -> Self::State {
        None
    }

    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State> {
        RegisterModel::apply(state, input, output)
    }
}

/// Registers keyed by name: input `(key, op)`, state the map of present keys
/// (sorted, so it hashes). Partition by key for speed ([`check_registers`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct KeyedRegisterModel;

impl Model for KeyedRegisterModel {
    type State = Vec<(Vec<u8>, Vec<u8>)>;
    type Input = (Vec<u8>, RegisterInput);
    type Output = RegisterOutput;

    fn init(&self) -> Self::State {
        Vec::new()
    }

    fn step(
        &self,
        state: &Self::State,
        (key, input): &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State> {
        let pos = state.binary_search_by(|(k, _)| k.as_slice().cmp(key));
        let current = pos.ok().map(|i| state[i].1.clone());
        let next = RegisterModel::apply(&current, input, output)?;
        if next == current {
            return Some(state.clone());
        }
        let mut state = state.clone();
        match (pos, next) {
            (Ok(i), Some(v)) => state[i].1 = v,
            (Ok(i), None) => {
                state.remove(i);
            }
            (Err(i), Some(v)) => state.insert(i, (key.clone(), v)),
            (Err(_), None) => {}
        }
        Some(state)
    }
}

/// A history over many keys, checked key by key (one [`RegisterModel`] per
/// key); a violation names the key as text.
pub fn check_registers(
    history: &[Operation<(Vec<u8>, RegisterInput), RegisterOutput>],
    max_steps: u64,
) -> CheckResult {
    let mut order: Vec<&[u8]> = Vec::new();
    let mut parts: HashMap<&[u8], Vec<Operation<RegisterInput, RegisterOutput>>> = HashMap::new();
    for op in history {
        let key = op.input.0.as_slice();
        parts
            .entry(key)
            .or_insert_with(|| {
                order.push(key);
                Vec::new()
            })
            .push(Operation {
                client: op.client,
                input: op.input.1.clone(),
                call: op.call,
                ret: op.ret.clone(),
            });
    }
    let mut unknown = None;
    for key in order {
        match check(&RegisterModel, &parts[key], max_steps) {
            CheckResult::Linearizable => {}
            CheckResult::NotLinearizable { reason } => {
                return CheckResult::NotLinearizable {
                    reason: format!("key {:?}: {reason}", Text(key)),
                }
            }
            CheckResult::Unknown { reason } => {
                unknown.get_or_insert(CheckResult::Unknown {
                    reason: format!("key {:?}: {reason}", Text(key)),
                });
            }
        }
    }
    unknown.unwrap_or(CheckResult::Linearizable)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Op = Operation<RegisterInput, RegisterOutput>;

    fn set(client: u64, v: &str, call: u64, ret: u64) -> Op {
        Operation {
            client,
            input: RegisterInput::Set(v.into()),
            call,
            ret: Some((ret, RegisterOutput::Ok)),
        }
    }

    fn set_unknown(client: u64, v: &str, call: u64) -> Op {
        Operation {
            client,
            input: RegisterInput::Set(v.into()),
            call,
            ret: None,
        }
    }

    fn get(client: u64, v: Option<&str>, call: u64, ret: u64) -> Op {
        Operation {
            client,
            input: RegisterInput::Get,
            call,
            ret: Some((ret, RegisterOutput::Value(v.map(Into::into)))),
        }
    }

    fn del(client: u64, n: i64, call: u64, ret: u64) -> Op {
        Operation {
            client,
            input: RegisterInput::Del,
            call,
            ret: Some((ret, RegisterOutput::Deleted(n))),
        }
    }

    fn verdict(history: &[Op]) -> CheckResult {
        check(&RegisterModel, history, 1_000_000)
    }

    #[test]
    fn empty_and_sequential_histories_are_linearizable() {
        assert!(verdict(&[]).is_linearizable());
        let h = [
            get(1, None, 0, 1),
            set(1, "a", 2, 3),
            get(2, Some("a"), 4, 5),
            del(1, 1, 6, 7),
            del(2, 0, 8, 9),
            get(1, None, 10, 11),
        ];
        assert!(verdict(&h).is_linearizable());
    }

    #[test]
    fn stale_read_after_completed_write_is_not_linearizable() {
        let h = [
            set(1, "a", 0, 1),
            set(1, "b", 2, 3),
            get(2, Some("a"), 4, 5),
        ];
        let CheckResult::NotLinearizable { reason } = verdict(&h) else {
            panic!("expected a violation");
        };
        assert!(reason.contains("client 2"), "{reason}");
    }

    #[test]
    fn concurrent_writes_may_be_read_in_either_order() {
        for (first, second) in [("a", "b"), ("b", "a")] {
            let h = [
                set(1, "a", 0, 10),
                set(2, "b", 1, 9),
                get(3, Some(first), 11, 12),
                get(3, Some(first), 13, 14),
            ];
            assert!(verdict(&h).is_linearizable());
            // Once one order is observed, the other cannot follow.
            let h = [
                set(1, "a", 0, 10),
                set(2, "b", 1, 9),
                get(3, Some(first), 11, 12),
                get(4, Some(second), 13, 14),
            ];
            assert!(!verdict(&h).is_linearizable());
        }
    }

    #[test]
    fn read_concurrent_with_write_sees_old_or_new() {
        let h = [
            set(1, "a", 0, 1),
            set(1, "b", 2, 10),
            get(2, Some("a"), 3, 4),
            get(3, Some("b"), 5, 6),
        ];
        assert!(verdict(&h).is_linearizable());
        // ...but not new then old.
        let h = [
            set(1, "a", 0, 1),
            set(1, "b", 2, 10),
            get(2, Some("b"), 3, 4),
            get(3, Some("a"), 5, 6),
        ];
        assert!(!verdict(&h).is_linearizable());
    }

    #[test]
    fn unknown_write_that_later_appears_in_a_read_is_linearizable() {
        let h = [
            set(1, "a", 0, 1),
            set_unknown(2, "x", 2),
            get(3, Some("a"), 3, 4),
            get(3, Some("x"), 100, 101),
            get(3, Some("x"), 102, 103),
        ];
        assert!(verdict(&h).is_linearizable());
    }

    #[test]
    fn unknown_write_that_never_appears_is_linearizable() {
        let h = [
            set(1, "a", 0, 1),
            set_unknown(2, "x", 2),
            get(3, Some("a"), 3, 4),
            get(3, Some("a"), 100, 101),
        ];
        assert!(verdict(&h).is_linearizable());
    }

    #[test]
    fn unknown_write_cannot_take_effect_before_its_call() {
        let h = [get(3, Some("x"), 0, 1), set_unknown(2, "x", 2)];
        assert!(!verdict(&h).is_linearizable());
    }

    #[test]
    fn unknown_write_takes_effect_at_most_once() {
        let h = [
            set_unknown(2, "x", 0),
            get(3, Some("x"), 1, 2),
            set(1, "a", 3, 4),
            get(3, Some("x"), 5, 6),
        ];
        assert!(!verdict(&h).is_linearizable());
    }

    #[test]
    fn read_of_a_value_never_written_is_not_linearizable() {
        let h = [set(1, "a", 0, 1), get(2, Some("zzz"), 2, 3)];
        assert!(!verdict(&h).is_linearizable());
    }

    #[test]
    fn del_count_must_match_presence() {
        assert!(!verdict(&[del(1, 1, 0, 1)]).is_linearizable());
        assert!(verdict(&[set(1, "a", 0, 1), del(1, 1, 2, 3)]).is_linearizable());
        assert!(!verdict(&[set(1, "a", 0, 1), del(1, 0, 2, 3)]).is_linearizable());
    }

    #[test]
    fn equal_timestamps_count_as_concurrent() {
        let h = [set(1, "a", 0, 5), get(2, None, 5, 6)];
        assert!(verdict(&h).is_linearizable());
    }

    /// A deterministic pseudo-random concurrent history of a correct register:
    /// `clients` clients, each with one op in flight; each op takes effect at a
    /// point inside its window.
    fn random_history(ops: usize, clients: u64, seed: u64) -> Vec<Op> {
        let mut x = seed | 1;
        let mut rand = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut value: Option<Vec<u8>> = None;
        let mut free_at = vec![0u64; clients as usize];
        let mut history = Vec::new();
        for t in 0..ops as u64 {
            // At time 10t one client's op takes effect; its call was a bit
            // earlier and its return a bit later, overlapping others.
            let c = rand(clients) as usize;
            let call = (10 * t).saturating_sub(rand(25)).max(free_at[c]);
            let ret = 10 * t + 1 + rand(25);
            free_at[c] = ret + 1;
            let (input, output) = match rand(3) {
                0 => {
                    let v = format!("v{t}").into_bytes();
                    value = Some(v.clone());
                    (RegisterInput::Set(v), RegisterOutput::Ok)
                }
                1 => (RegisterInput::Get, RegisterOutput::Value(value.clone())),
                _ => {
                    let n = i64::from(value.take().is_some());
                    (RegisterInput::Del, RegisterOutput::Deleted(n))
                }
            };
            history.push(Operation {
                client: c as u64,
                input,
                call: call.min(10 * t),
                ret: if rand(20) == 0 {
                    None
                } else {
                    Some((ret, output))
                },
            });
        }
        history
    }

    #[test]
    fn a_few_hundred_concurrent_ops_check_fast() {
        for seed in 1..=20 {
            let h = random_history(400, 5, seed);
            let result = check(&RegisterModel, &h, 2_000_000);
            assert_eq!(result, CheckResult::Linearizable, "seed {seed}");
        }
    }

    #[test]
    fn a_corrupted_read_in_a_long_history_is_caught() {
        let mut h = random_history(300, 4, 7);
        let victim = h
            .iter()
            .rposition(|op| op.input == RegisterInput::Get && op.ret.is_some())
            .expect("some read");
        h[victim].ret.as_mut().expect("completed").1 =
            RegisterOutput::Value(Some(b"never written".to_vec()));
        assert!(matches!(
            check(&RegisterModel, &h, 2_000_000),
            CheckResult::NotLinearizable { .. }
        ));
    }

    #[test]
    fn budget_exhaustion_gives_unknown() {
        let h = random_history(300, 5, 3);
        assert!(matches!(
            check(&RegisterModel, &h, 10),
            CheckResult::Unknown { .. }
        ));
    }

    #[test]
    fn partitioned_check_names_the_key() {
        let keyed = |k: &str, op: Op| Operation {
            client: op.client,
            input: (k.as_bytes().to_vec(), op.input),
            call: op.call,
            ret: op.ret,
        };
        let h = vec![
            keyed("x", set(1, "a", 0, 1)),
            keyed("y", set(1, "b", 2, 3)),
            keyed("x", get(2, Some("a"), 4, 5)),
            keyed("y", get(2, None, 6, 7)),
        ];
        let CheckResult::NotLinearizable { reason } = check_registers(&h, 10_000) else {
            panic!("expected a violation on y");
        };
        assert!(reason.starts_with("key \"y\""), "{reason}");
        // The generic partitioned check agrees.
        let generic = check_partitioned(&KeyedRegisterModel, &h, |(k, _)| k.clone(), 10_000);
        assert!(!generic.is_linearizable());
        assert!(check_registers(&h[..3], 10_000).is_linearizable());
        // The keyed model agrees on the whole (unpartitioned) history.
        assert!(!check(&KeyedRegisterModel, &h, 10_000).is_linearizable());
        assert!(check(&KeyedRegisterModel, &h[..3], 10_000).is_linearizable());
    }
}
