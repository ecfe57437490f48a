//! ZUNION, ZINTER, ZDIFF, their STORE forms and ZINTERCARD (Redis 7.0.15's
//! `zunionInterDiffGenericCommand`).
//!
//! Redis's error order is kept: `numkeys` is checked first (the parser's),
//! then every input key's type (WRONGTYPE), and only then the options
//! (WEIGHTS, AGGREGATE, WITHSCORES, LIMIT), so an option error is answered
//! by apply, after the type check. Scores are combined in Redis's order
//! (inputs sorted by size, a stable sort; NaN from `inf * 0` or
//! `inf + -inf` becomes 0), so sums round as Redis's do. The result is
//! built as a `skiplist` set and stored as `listpack` when small, as
//! `zsetConvertToListpackIfNeeded`.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::errors::{NOT_INTEGER, SYNTAX, WRONGTYPE};
use super::table::{Apply, Parse, Query};
use super::zset::{AddFlags, ZSet};
use super::zsets::{score_reply, store_result};
use super::{parse_i64, Ctx, Db, Output, Value};

#[derive(Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

/// Options after the keys, parsed at apply (after the type checks).
struct Options {
    weights: Vec<f64>,
    aggregate: Aggregate,
    withscores: bool,
    limit: usize,
}

/// `ZUNION|ZINTER|ZDIFF numkeys key … [WEIGHTS …] [AGGREGATE …]
/// [WITHSCORES]` and the STORE forms (`destination numkeys key …`).
pub(crate) struct ZSetOp {
    op: SetOp,
    dst: Option<Bytes>,
    keys: Vec<Bytes>,
    /// The arguments after the keys.
    rest: Vec<Bytes>,
    name: String,
}

/// `ZINTERCARD numkeys key … [LIMIT limit]`.
pub(crate) struct ZInterCard(ZSetOp);

/// Parses `numkeys` at `at` and splits keys from options.
fn parse_keys(args: &[Bytes], at: usize, name: &str) -> Result<(Vec<Bytes>, Vec<Bytes>), Output> {
    let numkeys = parse_i64(&args[at]).ok_or_else(|| Output::err(NOT_INTEGER))?;
    if numkeys < 1 {
        return Err(Output::err(format!(
            "ERR at least 1 input key is needed for '{name}' command"
        )));
    }
    if numkeys as u64 > (args.len() - at - 1) as u64 {
        return Err(Output::err(SYNTAX));
    }
    let end = at + 1 + numkeys as usize;
    Ok((args[at + 1..end].to_vec(), args[end..].to_vec()))
}

impl Parse<'_> for ZSetOp {
    fn parse(args: &[Bytes]) -> Result<ZSetOp, Output> {
        let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
        let (op, store) = match name.as_str() {
            "zunion" => (SetOp::Union, false),
            "zinter" => (SetOp::Inter, false),
            "zdiff" => (SetOp::Diff, false),
            "zunionstore" => (SetOp::Union, true),
            "zinterstore" => (SetOp::Inter, true),
            _ => (SetOp::Diff, true),
        };
        let at = if store { 2 } else { 1 };
        let (keys, rest) = parse_keys(args, at, &name)?;
        Ok(ZSetOp {
            op,
            dst: store.then(|| args[1].clone()),
            keys,
            rest,
            name,
        })
    }
}

impl Parse<'_> for ZInterCard {
    fn parse(args: &[Bytes]) -> Result<ZInterCard, Output> {
        let (keys, rest) = parse_keys(args, 1, "zintercard")?;
        Ok(ZInterCard(ZSetOp {
            op: SetOp::Inter,
            dst: None,
            keys,
            rest,
            name: "zintercard".into(),
        }))
    }
}

/// One input: its members and scores (a missing key is empty).
type Input<'a> = Option<&'a ZSet>;

impl ZSetOp {
    fn options(&self, cardinality_only: bool) -> Result<Options, Output> {
        let mut o = Options {
            weights: vec![1.0; self.keys.len()],
            aggregate: Aggregate::Sum,
            withscores: false,
            limit: 0,
        };
        let rest = &self.rest;
        let mut j = 0;
        while j < rest.len() {
            let remaining = rest.len() - j;
            let opt = rest[j].to_ascii_lowercase();
            let combining = self.op != SetOp::Diff && !cardinality_only;
            if combining && remaining > self.keys.len() && opt == b"weights" {
                j += 1;
                for w in o.weights.iter_mut() {
                    *w = super::zsets::parse_score(&rest[j])
                        .ok_or_else(|| Output::err("ERR weight value is not a float"))?;
                    j += 1;
                }
            } else if combining && remaining >= 2 && opt == b"aggregate" {
                o.aggregate = match rest[j + 1].to_ascii_lowercase().as_slice() {
                    b"sum" => Aggregate::Sum,
                    b"min" => Aggregate::Min,
                    b"max" => Aggregate::Max,
                    _ => return Err(Output::err(SYNTAX)),
                };
                j += 2;
            } else if self.dst.is_none() && !cardinality_only && opt == b"withscores" {
                o.withscores = true;
                j += 1;
            } else if cardinality_only && remaining >= 2 && opt == b"limit" {
                let limit = parse_i64(&rest[j + 1])
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| Output::err("ERR LIMIT can't be negative"))?;
                o.limit = limit as usize;
                j += 2;
            } else {
                return Err(Output::err(SYNTAX));
            }
        }
        Ok(o)
    }

    /// The plain sets among the inputs as sorted sets, every score 1 (Redis
    /// accepts sets wherever these commands take a sorted set); `None` for
    /// the other inputs. WRONGTYPE for any other type, in key order.
    fn converted_sets(&self, db: &Db, ctx: &Ctx) -> Result<Vec<Option<ZSet>>, Output> {
        self.keys
            .iter()
            .map(
                |k| match db.lookup_read(ctx.db, k, ctx.now).map(|e| &e.value) {
                    None | Some(Value::ZSet(_)) => Ok(None),
                    Some(Value::Set(set)) => {
                        let mut z = ZSet::new();
                        for member in set.iter() {
                            member.with_bytes(|m| z.add(m, 1.0, AddFlags::default()));
                        }
                        Ok(Some(z))
                    }
                    Some(_) => Err(Output::err(WRONGTYPE)),
                },
            )
            .collect()
    }

    fn inputs<'a>(&self, db: &'a Db, ctx: &Ctx, sets: &'a [Option<ZSet>]) -> Vec<Input<'a>> {
        self.keys
            .iter()
            .zip(sets)
            .map(|(k, converted)| match converted {
                Some(z) => Some(z),
                // The second look at a key `converted_sets` looked up
                // (counted, and its miss sent, once as in Redis).
                None => match db.dbs[ctx.db].live(k, ctx.now).map(|e| &e.value) {
                    Some(Value::ZSet(z)) => Some(&**z),
                    _ => None,
                },
            })
            .collect()
    }

    /// The combined set (or, for ZINTERCARD, only its size).
    fn compute(&self, db: &Db, ctx: &Ctx, cardinality_only: bool) -> Result<Computed, Output> {
        let sets = self.converted_sets(db, ctx)?;
        let inputs = self.inputs(db, ctx, &sets);
        let o = self.options(cardinality_only)?;
        let len = |i: &Input| i.map_or(0, |z| z.len());
        let mut order: Vec<usize> = (0..inputs.len()).collect();
        if self.op != SetOp::Diff {
            order.sort_by_key(|&i| len(&inputs[i]));
        }
        let weighted = |i: usize, score: f64| {
            let v = o.weights[i] * score;
            if v.is_nan() {
                0.0
            } else {
                v
            }
        };
        let aggregate = |target: f64, value: f64| match o.aggregate {
            Aggregate::Sum => {
                let s = target + value;
                if s.is_nan() {
                    0.0
                } else {
                    s
                }
            }
            Aggregate::Min => {
                if value < target {
                    value
                } else {
                    target
                }
            }
            Aggregate::Max => {
                if value > target {
                    value
                } else {
                    target
                }
            }
        };
        let mut result: Vec<(Bytes, f64)> = Vec::new();
        let mut cardinality = 0usize;
        match self.op {
            SetOp::Inter => {
                if let Some(first) = inputs[order[0]] {
                    'members: for (member, score) in first.iter() {
                        let mut acc = weighted(order[0], score);
                        for &j in &order[1..] {
                            match inputs[j].and_then(|z| z.score(member)) {
                                Some(s) => acc = aggregate(acc, weighted(j, s)),
                                None => continue 'members,
                            }
                        }
                        cardinality += 1;
                        if cardinality_only {
                            if o.limit > 0 && cardinality >= o.limit {
                                break;
                            }
                        } else {
                            result.push((Bytes::copy_from_slice(member), acc));
                        }
                    }
                }
            }
            SetOp::Union => {
                let mut acc: BTreeMap<Bytes, f64> = BTreeMap::new();
                for &i in &order {
                    let Some(z) = inputs[i] else { continue };
                    for (member, score) in z.iter() {
                        let v = weighted(i, score);
                        match acc.get_mut(member) {
                            Some(t) => *t = aggregate(*t, v),
                            None => {
                                acc.insert(Bytes::copy_from_slice(member), v);
                            }
                        }
                    }
                }
                result = acc.into_iter().collect();
            }
            SetOp::Diff => {
                if let Some(first) = inputs[0] {
                    let same = self.keys[1..].iter().any(|k| *k == self.keys[0]);
                    if !same {
                        for (member, score) in first.iter() {
                            if inputs[1..]
                                .iter()
                                .all(|z| z.is_none_or(|z| z.score(member).is_none()))
                            {
                                result.push((Bytes::copy_from_slice(member), score));
                            }
                        }
                    }
                }
            }
        }
        Ok(Computed {
            result,
            cardinality,
            withscores: o.withscores,
        })
    }
}

struct Computed {
    result: Vec<(Bytes, f64)>,
    cardinality: usize,
    withscores: bool,
}

/// The result in score order, as the `skiplist` Redis builds it in.
fn ordered(result: &[(Bytes, f64)]) -> ZSet {
    let mut set = ZSet::new_skiplist();
    for (member, score) in result {
        set.add(member, *score, AddFlags::default());
    }
    set
}

/// The result as a set to store: `listpack` when small enough.
fn build(result: &[(Bytes, f64)]) -> ZSet {
    let mut set = ordered(result);
    set.convert_to_packed_if_small();
    set
}

impl Query<'_> for ZSetOp {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        let computed = match self.compute(db, ctx, false) {
            Ok(c) => c,
            Err(e) => return e,
        };
        // Redis replies from the skiplist itself: a listpack would turn a
        // `-0` score into `0`, which only the STORE forms do.
        let set = ordered(&computed.result);
        let items: Vec<(Bytes, f64)> = set
            .iter()
            .map(|(m, s)| (Bytes::copy_from_slice(m), s))
            .collect();
        if computed.withscores {
            Output::Pairs(
                items
                    .into_iter()
                    .map(|(m, s)| (Output::bulk(m), score_reply(s)))
                    .collect(),
            )
        } else {
            Output::Array(items.into_iter().map(|(m, _)| Output::bulk(m)).collect())
        }
    }
}

impl Apply<'_> for ZSetOp {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        let Some(dst) = self.dst.clone() else {
            return Output::err(format!("ERR '{}' is not a store command", self.name));
        };
        for key in &self.keys {
            db.expire_if_needed(ctx.db, key);
        }
        let computed = match self.compute(db, ctx, false) {
            Ok(c) => c,
            Err(e) => return e,
        };
        let set = build(&computed.result);
        let event = match self.op {
            SetOp::Union => "zunionstore",
            SetOp::Inter => "zinterstore",
            SetOp::Diff => "zdiffstore",
        };
        store_result(db, ctx, &dst, set, event)
    }
}

impl Query<'_> for ZInterCard {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        match self.0.compute(db, ctx, true) {
            Ok(c) => Output::Integer(c.cardinality as i64),
            Err(e) => e,
        }
    }
}
