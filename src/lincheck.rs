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
//! linearized yet. The order in which pending calls are tried alternates between
//! two (see [`check`]), so that unknown writes that never took effect cannot make
//! the search exponential; of several pending unknown operations with the same
//! effect ([`Model::same_effect`], e.g. INCRs) only the earliest called is tried. A set of (linearized operations, model state) pairs already
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
    /// True if `a` and `b` have the same effect in every state when their results
    /// are unknown (e.g. two INCRs of one counter, or equal inputs). Among pending
    /// operations with an unknown outcome and the same effect, the search then
    /// only tries the earliest called: any order using a later one works with the
    /// earlier one in its place. The default, `false`, is always correct.
    fn same_effect(&self, _a: &Self::Input, _b: &Self::Input) -> bool {
        false
    }
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
    fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
}

/// For each operation with an unknown outcome, the latest one called before it
/// with the same effect ([`Model::same_effect`]), if any. The search tries an
/// unknown operation only once that one is linearized, so the linearized ones of
/// each such chain are always its earliest called.
fn earlier_twins<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
) -> Vec<Option<usize>> {
    let mut unknown: Vec<usize> = (0..history.len())
        .filter(|&i| history[i].ret.is_none())
        .collect();
    unknown.sort_by_key(|&i| (history[i].call, i));
    let mut twin = vec![None; history.len()];
    for (k, &op) in unknown.iter().enumerate() {
        twin[op] = unknown[..k]
            .iter()
            .rev()
            .copied()
            .find(|&earlier| model.same_effect(&history[earlier].input, &history[op].input));
    }
    twin
}

/// Which pending calls the search is trying at the current configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Calls of completed operations (and, in call order, all calls), oldest
    /// first, walking forward.
    Completed,
    /// Calls of operations with an unknown outcome, newest first, walking back
    /// from the first pending return.
    Unknown,
}

/// Checks one history against `model` with at most `max_steps` search steps.
///
/// At each configuration the candidates are the calls before the first pending
/// return; the order in which they are tried does not change the verdict (every
/// one is tried before backtracking), only the time to reach it, so the search
/// alternates between two orders with growing budgets until one decides:
///
/// - in call order (Lowe's): best when ops with an unknown outcome took effect
///   when called, as most do;
/// - completed ops first, in call order, then ops with an unknown outcome, newest
///   first. An unknown write that never took effect stays pending to the end of
///   the history, and in call order the search walks through every subset of such
///   writes at every later read that does not show them: exponential in their
///   number. Tried last, they are linearized only when a read needs them.
pub fn check<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    max_steps: u64,
) -> CheckResult {
    // Each order gets 10k steps, then both twice as many, and so on: an easy
    // history costs a few thousand steps in the order that suits it, and a hard
    // one at most about four times what it needs in its better order.
    let mut left = max_steps;
    let mut slice: u64 = 10_000;
    let mut unknown_last = false;
    while left > 0 {
        // The last slice takes whatever is left.
        let steps = if left < slice * 3 { left } else { slice };
        match search(model, history, steps, unknown_last) {
            Some(verdict) => return verdict,
            None => left -= steps,
        }
        if unknown_last {
            slice *= 2;
        }
        unknown_last = !unknown_last;
    }
    CheckResult::Unknown {
        reason: format!(
            "search budget of {max_steps} steps exhausted on {} ops",
            history.len()
        ),
    }
}

/// One search with at most `max_steps` steps (None: out of budget); with
/// `unknown_last`, calls with an unknown outcome are tried after the completed
/// ones, newest first; else every call in call order.
fn search<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    max_steps: u64,
    unknown_last: bool,
) -> Option<CheckResult> {
    let completed = history.iter().filter(|op| op.ret.is_some()).count();
    if completed == 0 {
        return Some(CheckResult::Linearizable);
    }
    let mut list = EventList::build(history);
    let twins = earlier_twins(model, history);
    let mut linearized = Bits::new(history.len());
    let mut seen: HashSet<(Bits, M::State)> = HashSet::new();
    // (call event linearized, state before it, phase it was tried in).
    let mut stack: Vec<(usize, M::State, Phase)> = Vec::new();
    let mut state = model.init();
    let mut completed_left = completed;
    // The deepest point reached, for the report: (completed ops linearized,
    // the op whose return blocked the search there, the state there).
    let mut best: Option<(usize, usize, M::State)> = None;
    let mut steps: u64 = 0;
    let mut phase = Phase::Completed;
    let mut entry = list.events[HEAD].next;
    loop {
        steps += 1;
        if steps > max_steps {
            return None;
        }
        if completed_left == 0 {
            return Some(CheckResult::Linearizable);
        }
        // Only the returns of completed ops can end the list before all are
        // linearized, and those stop the forward walk; walking back ends at HEAD.
        assert!(
            entry != NIL,
            "event list ended with completed operations pending"
        );
        if entry != HEAD {
            let event = list.events[entry];
            if !event.is_call {
                // The first pending return (forward walk only): this op's window
                // closes here. Now try the unknown ops called before it.
                debug_assert_eq!(phase, Phase::Completed);
                let depth = completed - completed_left;
                if best.as_ref().is_none_or(|(d, _, _)| depth > *d) {
                    best = Some((depth, event.op, state.clone()));
                }
                phase = Phase::Unknown;
                // In call order, the unknown ops were tried with the others.
                entry = if unknown_last { event.prev } else { HEAD };
                continue;
            }
            let op = &history[event.op];
            let candidate = match phase {
                Phase::Completed => op.ret.is_some() || !unknown_last,
                Phase::Unknown => op.ret.is_none(),
            } && twins[event.op].is_none_or(|twin| linearized.get(twin));
            if candidate {
                let output = op.ret.as_ref().map(|(_, o)| o);
                if let Some(next_state) = model.step(&state, &op.input, output) {
                    let mut bits = linearized.clone();
                    bits.set(event.op);
                    if seen.insert((bits.clone(), next_state.clone())) {
                        stack.push((entry, std::mem::replace(&mut state, next_state), phase));
                        linearized = bits;
                        if op.ret.is_some() {
                            completed_left -= 1;
                        }
                        list.lift(entry);
                        phase = Phase::Completed;
                        entry = list.events[HEAD].next;
                        continue;
                    }
                }
            }
            entry = match phase {
                Phase::Completed => event.next,
                Phase::Unknown => event.prev,
            };
            continue;
        }
        // Every candidate at this configuration has been tried: backtrack.
        let Some((call, previous, tried_in)) = stack.pop() else {
            let (depth, blocked, at_state) = best.expect("set at the first return reached");
            let op = &history[blocked];
            return Some(CheckResult::NotLinearizable {
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
            });
        };
        let undone = list.events[call].op;
        if history[undone].ret.is_some() {
            completed_left += 1;
        }
        linearized.clear(undone);
        state = previous;
        list.unlift(call);
        phase = tried_in;
        entry = match phase {
            Phase::Completed => list.events[call].next,
            Phase::Unknown => list.events[call].prev,
        };
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

    fn same_effect(&self, a: &RegisterInput, b: &RegisterInput) -> bool {
        a == b
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

    fn same_effect(&self, a: &Self::Input, b: &Self::Input) -> bool {
        a == b
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
    fn unknown_writes_that_never_take_effect_do_not_blow_up_the_search() {
        // 40 writes time out and never take effect; every later read must be
        // explained without them. Trying them first (in call order) would walk
        // through up to 2^40 subsets before the first read; tried last, the reads
        // linearize at once.
        let mut h = vec![set(1, "a", 0, 1)];
        for i in 0..40 {
            h.push(set_unknown(2 + i, &format!("x{i}"), 2 + i));
        }
        for i in 0..40 {
            h.push(get(100, Some("a"), 100 + 2 * i, 101 + 2 * i));
        }
        assert_eq!(
            check(&RegisterModel, &h, 100_000),
            CheckResult::Linearizable
        );
        // One of them did take effect, late: found without trying every subset.
        h.push(get(100, Some("x7"), 500, 501));
        h.push(get(100, Some("x7"), 502, 503));
        assert_eq!(
            check(&RegisterModel, &h, 100_000),
            CheckResult::Linearizable
        );
        // ...but it cannot be undone.
        h.push(get(100, Some("a"), 504, 505));
        assert!(!check(&RegisterModel, &h, 1_000_000).is_linearizable());
    }

    /// Three accounts; a transfer moves an amount atomically and returns the two
    /// new balances; a read returns all three.
    struct Bank;

    #[derive(Clone, Debug)]
    enum BankIn {
        Transfer(usize, usize, i64),
        Read,
    }

    #[derive(Clone, Debug, PartialEq)]
    enum BankOut {
        Done(i64, i64),
        Balances([i64; 3]),
    }

    impl Model for Bank {
        type State = [i64; 3];
        type Input = BankIn;
        type Output = BankOut;
        fn init(&self) -> [i64; 3] {
            [0; 3]
        }
        fn step(&self, s: &[i64; 3], i: &BankIn, o: Option<&BankOut>) -> Option<[i64; 3]> {
            match (i, o) {
                (BankIn::Transfer(from, to, amount), o) => {
                    let mut next = *s;
                    next[*from] -= amount;
                    next[*to] += amount;
                    match o {
                        None => Some(next),
                        Some(BankOut::Done(a, b)) => {
                            (*a == next[*from] && *b == next[*to]).then_some(next)
                        }
                        Some(BankOut::Balances(_)) => None,
                    }
                }
                (BankIn::Read, None) => Some(*s),
                (BankIn::Read, Some(BankOut::Balances(b))) => (b == s).then_some(*s),
                (BankIn::Read, Some(BankOut::Done(..))) => None,
            }
        }
    }

    type BankOp = Operation<BankIn, BankOut>;

    fn transfer(client: u64, from: usize, to: usize, amount: i64, call: u64) -> BankOp {
        Operation {
            client,
            input: BankIn::Transfer(from, to, amount),
            call,
            ret: None,
        }
    }

    fn done(mut op: BankOp, ret: u64, a: i64, b: i64) -> BankOp {
        op.ret = Some((ret, BankOut::Done(a, b)));
        op
    }

    fn read(client: u64, b: [i64; 3], call: u64, ret: u64) -> BankOp {
        Operation {
            client,
            input: BankIn::Read,
            call,
            ret: Some((ret, BankOut::Balances(b))),
        }
    }

    #[test]
    fn bank_history_with_many_unknown_transfers_checks_fast() {
        // Acknowledged transfers 0→1 of 1 each, reads after each; 30 unknown
        // transfers 1→2 of 100 interleaved, of which only #12 took effect.
        let mut h = Vec::new();
        let mut balances = [0i64; 3];
        let mut t = 0;
        for i in 0..30 {
            balances[0] -= 1;
            balances[1] += 1;
            h.push(done(
                transfer(1, 0, 1, 1, t),
                t + 2,
                balances[0],
                balances[1],
            ));
            h.push(transfer(2, 1, 2, 100, t + 1));
            if i == 12 {
                balances[1] -= 100;
                balances[2] += 100;
            }
            h.push(read(3, balances, t + 5, t + 6));
            t += 10;
        }
        assert_eq!(check(&Bank, &h, 200_000), CheckResult::Linearizable);
    }

    #[test]
    fn non_linearizable_bank_histories_are_rejected() {
        // A read that sees half of a transfer.
        let h = [
            done(transfer(1, 0, 1, 5, 0), 10, -5, 5),
            read(2, [-5, 0, 0], 11, 12),
        ];
        assert!(!check(&Bank, &h, 10_000).is_linearizable());
        // A stale read after an acknowledged transfer, with unknown transfers
        // around that could not explain it.
        let h = [
            transfer(3, 2, 0, 7, 0),
            done(transfer(1, 0, 1, 5, 1), 10, -5, 5),
            transfer(3, 1, 2, 9, 11),
            read(2, [0, 0, 0], 20, 21),
        ];
        let CheckResult::NotLinearizable { reason } = check(&Bank, &h, 10_000) else {
            panic!("a stale read must be caught");
        };
        assert!(reason.contains("client 2"), "{reason}");
        // An unknown transfer seen by one read and gone in the next.
        let h = [
            done(transfer(1, 0, 1, 5, 0), 10, -5, 5),
            transfer(3, 1, 2, 2, 11),
            read(2, [-5, 3, 2], 20, 21),
            read(2, [-5, 5, 0], 22, 23),
        ];
        assert!(!check(&Bank, &h, 10_000).is_linearizable());
        // The same unknown transfer seen twice is fine.
        let mut ok = h.clone();
        ok[3] = read(2, [-5, 3, 2], 22, 23);
        assert!(check(&Bank, &ok, 10_000).is_linearizable());
        // Two acknowledged transfers whose results admit no common order.
        let h = [
            done(transfer(1, 0, 1, 5, 0), 10, -5, 5),
            done(transfer(2, 0, 2, 3, 0), 10, -3, 3),
        ];
        assert!(!check(&Bank, &h, 10_000).is_linearizable());
    }

    #[test]
    fn both_search_orders_reach_the_same_verdict() {
        for seed in 1..=30 {
            let mut h = random_history(80, 3, seed);
            let verdicts = |h: &[Op]| {
                [false, true].map(|unknown_last| {
                    search(&RegisterModel, h, 5_000_000, unknown_last).expect("within budget")
                })
            };
            let [a, b] = verdicts(&h);
            assert_eq!(a, CheckResult::Linearizable, "seed {seed}");
            assert_eq!(b, CheckResult::Linearizable, "seed {seed}");
            // Corrupt one read (to a value written later, or never): both reject.
            let victim = (seed as usize * 7) % h.len();
            if h[victim].input == RegisterInput::Get && h[victim].ret.is_some() {
                h[victim].ret.as_mut().expect("completed").1 =
                    RegisterOutput::Value(Some(b"v79".to_vec()));
                let [a, b] = verdicts(&h);
                assert_eq!(a.is_linearizable(), b.is_linearizable(), "seed {seed}");
            }
        }
    }

    /// One counter: INCR returns the new value, GET reads it; INCRs with unknown
    /// outcomes are interchangeable.
    struct Counter;

    #[derive(Clone, Debug, PartialEq)]
    enum CounterIn {
        Incr,
        Get,
    }

    impl Model for Counter {
        type State = i64;
        type Input = CounterIn;
        type Output = i64;
        fn init(&self) -> i64 {
            0
        }
        fn step(&self, s: &i64, i: &CounterIn, o: Option<&i64>) -> Option<i64> {
            let next = if *i == CounterIn::Incr { s + 1 } else { *s };
            o.is_none_or(|&v| v == next).then_some(next)
        }
        fn same_effect(&self, a: &CounterIn, b: &CounterIn) -> bool {
            a == b
        }
    }

    /// A concurrent counter history (as [`random_history`]): a quarter of the
    /// INCRs time out, and a third of those take effect.
    fn counter_history(ops: u64, clients: u64, seed: u64) -> Vec<Operation<CounterIn, i64>> {
        let mut x = seed | 1;
        let mut rand = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut value = 0;
        let mut free_at = vec![0u64; clients as usize];
        let mut h = Vec::new();
        for t in 0..ops {
            let c = rand(clients) as usize;
            let call = (10 * t)
                .saturating_sub(rand(25))
                .max(free_at[c])
                .min(10 * t);
            let ret = 10 * t + 1 + rand(25);
            free_at[c] = ret + 1;
            let (input, ret) = if rand(2) == 0 {
                (CounterIn::Get, Some((ret, value)))
            } else if rand(4) == 0 {
                if rand(3) == 0 {
                    value += 1;
                }
                (CounterIn::Incr, None)
            } else {
                value += 1;
                (CounterIn::Incr, Some((ret, value)))
            };
            h.push(Operation {
                client: c as u64,
                input,
                call,
                ret,
            });
        }
        h
    }

    #[test]
    fn interchangeable_unknown_ops_are_tried_once() {
        let h = counter_history(600, 5, 11);
        assert_eq!(check(&Counter, &h, 200_000), CheckResult::Linearizable);
        // Without `same_effect` the search tries every choice of which unknown
        // INCRs took effect.
        struct Plain;
        impl Model for Plain {
            type State = i64;
            type Input = CounterIn;
            type Output = i64;
            fn init(&self) -> i64 {
                0
            }
            fn step(&self, s: &i64, i: &CounterIn, o: Option<&i64>) -> Option<i64> {
                Counter.step(s, i, o)
            }
        }
        assert!(matches!(
            check(&Plain, &h, 200_000),
            CheckResult::Unknown { .. }
        ));
        // Small histories, right or with a read off by one: the same verdicts.
        for seed in 1..=40 {
            let mut h = counter_history(40, 3, seed);
            for round in 0..2 {
                let a = check(&Counter, &h, 1_000_000);
                let b = check(&Plain, &h, 1_000_000);
                assert!(!matches!(a, CheckResult::Unknown { .. }), "seed {seed}");
                assert!(!matches!(b, CheckResult::Unknown { .. }), "seed {seed}");
                assert_eq!(
                    a.is_linearizable(),
                    b.is_linearizable(),
                    "seed {seed} round {round}"
                );
                let i = (seed as usize * 5) % h.len();
                if let Some((_, v)) = h[i].ret.as_mut() {
                    *v += 1;
                }
            }
        }
        // A read showing more INCRs than were ever called is still caught.
        let mut bad = h.clone();
        let victim = (50..bad.len())
            .find(|&i| bad[i].input == CounterIn::Get)
            .expect("some read");
        bad[victim].ret.as_mut().expect("reads are completed").1 += 100;
        assert!(matches!(
            check(&Counter, &bad, 1_000_000),
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
