//! SORT and SORT_RO: the elements of a list, set or sorted set, sorted
//! numerically or as strings, by themselves or by the values of other keys
//! (`BY pattern`), windowed (`LIMIT`), mapped to other keys' values
//! (`GET pattern ...`), replied or stored as a list (`STORE`, SORT only).
//!
//! Redis 7.0.15's `sortCommandGeneric` is the reference, rule for rule:
//! - Options are parsed left to right before the key is read: an unknown
//!   word, a `LIMIT`/`BY`/`GET`/`STORE` without its arguments (and `STORE` in
//!   SORT_RO) is `ERR syntax error`, a `LIMIT` bound that is not an integer
//!   is Redis's integer error; all of these are answered before proposing.
//! - `BY` with a pattern without `*` means "don't sort": lists and sorted
//!   sets keep their own order (reversed by `DESC`, windowed by `LIMIT`),
//!   sets keep their iteration order — except with `STORE`, where a set is
//!   sorted as strings instead, so every replica stores the same list.
//! - Numeric order compares the parsed doubles and breaks ties by the
//!   elements' bytes, so it is total. `ALPHA` compares bytes as C strings
//!   (up to the first NUL, Redis's `strcoll` in the C/C.UTF-8 locale) and,
//!   with `STORE`, as whole byte strings. Elements that still compare equal
//!   (ALPHA BY values that are equal or missing) keep their input order: the
//!   sort is stable, as glibc's `qsort` (a merge sort) is in Redis for the
//!   full sort. Redis's partial sort for `BY` with a `LIMIT` window is not
//!   stable; dkv's order of such ties is the stable one, which Redis leaves
//!   unspecified.
//! - Input order: lists head to tail, sets in [`Set::iter`] order, sorted
//!   sets by rank. Everything is a function of the replicated map: apply is
//!   deterministic.
//! - A sorted set being sorted is converted to `skiplist` first, as Redis
//!   does (visible in OBJECT ENCODING), without counting as a change. Only
//!   SORT does that: it is a write in dkv (below); SORT_RO is a read, runs on
//!   `&Db` and leaves the encoding alone — a known difference.
//!
//! Routing: Redis flags SORT `write denyoom` with or without `STORE`, and so
//! does dkv's row, so SORT always goes through the Raft log (the simple
//! path: one row, one kind); SORT_RO is a read (ReadIndex path).

use bytes::Bytes;

use super::errors::{NOT_INTEGER, SYNTAX, WRONGTYPE};
use super::list::List;
use super::notify;
use super::set::Set;
use super::table::{Apply, Parse, Query};
use super::zset::ZSet;
use super::zsets::parse_c_double;
use super::{parse_i64, Ctx, Db, Output, Value};

/// Redis's reply to `BY` with a pattern from a user who may not read every
/// key.
pub(crate) const BY_DENIED: &str =
    "ERR BY option of SORT denied due to insufficient ACL permissions.";
/// Redis's reply to any `GET` from a user who may not read every key.
pub(crate) const GET_DENIED: &str =
    "ERR GET option of SORT denied due to insufficient ACL permissions.";

/// Redis's reply when a numeric sort meets a value that is not a double.
const NOT_DOUBLE: &str = "ERR One or more scores can't be converted into double";

/// The parsed options of SORT / SORT_RO.
pub(crate) struct Sort {
    key: Bytes,
    desc: bool,
    alpha: bool,
    limit: (i64, i64),
    by: Option<Bytes>,
    /// Set by any BY pattern without `*`, even if a later BY has one (the
    /// last pattern is still the one looked up): Redis's sticky `dontsort`.
    dontsort: bool,
    gets: Vec<Bytes>,
    store: Option<Bytes>,
}

/// SORT_RO: SORT without `STORE`, a read.
pub(crate) struct SortRo(Sort);

impl Sort {
    /// Parses the options left to right. `patterns_allowed` is false for a
    /// user without read access to every key: then a `BY` pattern with `*`
    /// or any `GET` is refused where the parse reaches it.
    fn parse_options(
        args: &[Bytes],
        readonly: bool,
        patterns_allowed: bool,
    ) -> Result<Sort, Output> {
        let mut sort = Sort {
            key: args[1].clone(),
            desc: false,
            alpha: false,
            limit: (0, -1),
            by: None,
            dontsort: false,
            gets: Vec::new(),
            store: None,
        };
        let mut j = 2;
        while j < args.len() {
            let word = &args[j];
            let left = args.len() - j - 1;
            if word.eq_ignore_ascii_case(b"asc") {
                sort.desc = false;
            } else if word.eq_ignore_ascii_case(b"desc") {
                sort.desc = true;
            } else if word.eq_ignore_ascii_case(b"alpha") {
                sort.alpha = true;
            } else if word.eq_ignore_ascii_case(b"limit") && left >= 2 {
                let start = parse_i64(&args[j + 1]).ok_or_else(|| Output::err(NOT_INTEGER))?;
                let count = parse_i64(&args[j + 2]).ok_or_else(|| Output::err(NOT_INTEGER))?;
                sort.limit = (start, count);
                j += 2;
            } else if !readonly && word.eq_ignore_ascii_case(b"store") && left >= 1 {
                sort.store = Some(args[j + 1].clone());
                j += 1;
            } else if word.eq_ignore_ascii_case(b"by") && left >= 1 {
                let constant = !c_str(&args[j + 1]).contains(&b'*');
                if !constant && !patterns_allowed {
                    return Err(Output::err(BY_DENIED));
                }
                sort.by = Some(args[j + 1].clone());
                sort.dontsort |= constant;
                j += 1;
            } else if word.eq_ignore_ascii_case(b"get") && left >= 1 {
                if !patterns_allowed {
                    return Err(Output::err(GET_DENIED));
                }
                sort.gets.push(args[j + 1].clone());
                j += 1;
            } else {
                return Err(Output::err(SYNTAX));
            }
            j += 1;
        }
        Ok(sort)
    }
}

impl Parse<'_> for Sort {
    fn parse(args: &[Bytes]) -> Result<Sort, Output> {
        Sort::parse_options(args, false, true)
    }
}

impl Parse<'_> for SortRo {
    fn parse(args: &[Bytes]) -> Result<SortRo, Output> {
        Sort::parse_options(args, true, true).map(SortRo)
    }
}

/// SORT's or SORT_RO's check (`args[0]` says which) for a user who may not
/// read every key (see [`crate::acl::unrestricted_key_access`]): the row's
/// check, plus Redis's refusal of `BY` patterns and `GET` at the point the
/// parse reaches them, so an earlier syntax error still comes first. The
/// server runs it instead of the row's check, before proposing or reading;
/// apply never needs it (only checked commands reach the log).
pub(crate) fn check_restricted(args: &[Bytes]) -> Result<(), Output> {
    let readonly = args[0].eq_ignore_ascii_case(b"sort_ro");
    Sort::parse_options(args, readonly, false).map(drop)
}

/// The part of `bytes` C string functions see: up to the first NUL.
fn c_str(bytes: &[u8]) -> &[u8] {
    bytes.split(|&c| c == 0).next().unwrap_or(&[])
}

/// Redis's `lookupKeyByPattern`: `#` is the element itself; otherwise the
/// first `*` is replaced by the element, and a `->field` suffix reads that
/// field of a hash instead of a string. A pattern without `*`, a missing key
/// or a key of the other type gives nothing.
fn lookup_pattern(db: &Db, ctx: &Ctx, pattern: &[u8], element: &Bytes) -> Option<Bytes> {
    if pattern.first() == Some(&b'#') && pattern.get(1).is_none_or(|&c| c == 0) {
        return Some(element.clone());
    }
    let visible = c_str(pattern);
    let star = visible.iter().position(|&c| c == b'*')?;
    // "->" after the star, with at least one (non-NUL) byte after it.
    let arrow = visible[star + 1..]
        .windows(2)
        .position(|w| w == b"->")
        .map(|at| star + 1 + at)
        .filter(|&at| visible.get(at + 2).is_some());
    let (postfix_end, field) = match arrow {
        Some(at) => (at, Some(&pattern[at + 2..])),
        None => (pattern.len(), None),
    };
    let mut key = Vec::with_capacity(pattern.len() + element.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(element);
    key.extend_from_slice(&pattern[star + 1..postfix_end]);
    match (&db.lookup_read(ctx.db, &key, ctx.now)?.value, field) {
        (Value::Hash(hash), Some(field)) => hash.get(field).cloned(),
        (Value::Str(s), None) => Some(s.bytes().clone()),
        _ => None,
    }
}

/// `strtod` as SORT uses it: leading C whitespace allowed, the text up to a
/// NUL must all be read (the empty string is 0), and NaN or a range error
/// (overflow, or underflow to zero or to a subnormal) is refused.
fn sort_score(value: &[u8]) -> Option<f64> {
    let text = c_str(value);
    if text.is_empty() {
        return Some(0.0);
    }
    let text = std::str::from_utf8(text).ok()?;
    let trimmed = text.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let number = parse_c_double(trimmed)?;
    if number.is_nan() {
        return None;
    }
    let unsigned = trimmed.trim_start_matches(['+', '-']).to_ascii_lowercase();
    if number.is_infinite() && unsigned != "inf" && unsigned != "infinity" {
        return None;
    }
    let hex = unsigned.starts_with("0x");
    if number == 0.0 {
        let mantissa = if hex {
            unsigned[2..].split('p').next().unwrap_or("")
        } else {
            unsigned.split('e').next().unwrap_or("")
        };
        if mantissa
            .bytes()
            .any(|c| c.is_ascii_alphanumeric() && c != b'0')
        {
            return None;
        }
    } else if number.is_subnormal() && !hex {
        // A decimal subnormal is never exact: glibc reports ERANGE.
        return None;
    }
    Some(number)
}

/// One element to sort with its sort key.
struct Item {
    element: Bytes,
    score: f64,
    by_value: Option<Bytes>,
}

/// Which comparison Redis's `sortCompare` makes.
#[derive(Clone, Copy)]
struct Order {
    alpha: bool,
    by: bool,
    store: bool,
    desc: bool,
}

impl Order {
    fn compare(self, a: &Item, b: &Item) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        let strings = |x: &[u8], y: &[u8]| {
            if self.store {
                x.cmp(y)
            } else {
                c_str(x).cmp(c_str(y))
            }
        };
        let cmp = if !self.alpha {
            if a.score > b.score {
                Ordering::Greater
            } else if a.score < b.score {
                Ordering::Less
            } else {
                a.element.cmp(&b.element)
            }
        } else if self.by {
            match (&a.by_value, &b.by_value) {
                (Some(x), Some(y)) => strings(x, y),
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
            }
        } else {
            strings(&a.element, &b.element)
        };
        if self.desc {
            cmp.reverse()
        } else {
            cmp
        }
    }
}

/// The value being sorted, borrowed from the map (absent: an empty list).
enum Source<'a> {
    Empty,
    List(&'a List),
    Set(&'a Set),
    ZSet(&'a ZSet),
}

impl<'a> Source<'a> {
    fn of(value: Option<&'a Value>) -> Result<Source<'a>, Output> {
        match value {
            None => Ok(Source::Empty),
            Some(Value::List(l)) => Ok(Source::List(l)),
            Some(Value::Set(s)) => Ok(Source::Set(s)),
            Some(Value::ZSet(z)) => Ok(Source::ZSet(z)),
            Some(_) => Err(Output::err(WRONGTYPE)),
        }
    }

    fn len(&self) -> usize {
        match self {
            Source::Empty => 0,
            Source::List(l) => l.len(),
            Source::Set(s) => s.len(),
            Source::ZSet(z) => z.len(),
        }
    }
}

/// The result: the window's elements (each then mapped by the GET
/// patterns), or Redis's conversion error.
struct Sorted {
    elements: Vec<Bytes>,
}

impl Sort {
    /// Runs the sort over `source`; patterns are looked up in `db`.
    fn run(&self, db: &Db, ctx: &Ctx, source: &Source<'_>) -> Result<Sorted, Output> {
        let mut dontsort = self.dontsort;
        let mut alpha = self.alpha;
        let mut by = self.by.as_ref();
        if dontsort && matches!(source, Source::Set(_)) && self.store.is_some() {
            // A set's own order is not the same on every server: sort it.
            dontsort = false;
            alpha = true;
            by = None;
        }
        let len = source.len() as i64;
        let (limit_start, limit_count) = self.limit;
        let mut start = limit_start.max(0).min(len);
        let count = limit_count.max(-1).min(len);
        let mut end = if count < 0 {
            len - 1
        } else {
            start + count - 1
        };
        if start >= len {
            start = len - 1;
            end = len - 2;
        }
        if end >= len {
            end = len - 1;
        }
        let ordered = matches!(source, Source::List(_) | Source::ZSet(_));
        let elements: Vec<Bytes> = if ordered && dontsort {
            // Their own order, reversed by DESC, only the window.
            let window = if end >= start {
                (end - start + 1) as usize
            } else {
                0
            };
            let first = if self.desc { len - 1 - start } else { start };
            let elements = match source {
                Source::List(l) if window > 0 => {
                    let first = first as usize;
                    if self.desc {
                        l.iter()
                            .rev()
                            .skip(l.len() - 1 - first)
                            .take(window)
                            .map(Bytes::copy_from_slice)
                            .collect()
                    } else {
                        l.iter()
                            .skip(first)
                            .take(window)
                            .map(Bytes::copy_from_slice)
                            .collect()
                    }
                }
                Source::ZSet(z) if window > 0 => z
                    .iter_from(first as usize, self.desc)
                    .take(window)
                    .map(|(m, _)| Bytes::copy_from_slice(m))
                    .collect(),
                _ => Vec::new(),
            };
            if window > 0 {
                end -= start;
                start = 0;
            }
            elements
        } else {
            match source {
                Source::Empty => Vec::new(),
                Source::List(l) => l.iter().map(Bytes::copy_from_slice).collect(),
                Source::Set(s) => s.iter().map(|m| m.to_bytes()).collect(),
                Source::ZSet(z) => z.iter().map(|(m, _)| Bytes::copy_from_slice(m)).collect(),
            }
        };
        let elements = if dontsort {
            elements
        } else {
            let mut items = Vec::with_capacity(elements.len());
            let mut not_double = false;
            for element in elements {
                let mut item = Item {
                    element,
                    score: 0.0,
                    by_value: None,
                };
                let value = match by {
                    Some(pattern) => lookup_pattern(db, ctx, pattern, &item.element),
                    None => Some(item.element.clone()),
                };
                if let Some(value) = value {
                    if alpha {
                        if by.is_some() {
                            item.by_value = Some(value);
                        }
                    } else {
                        match sort_score(&value) {
                            Some(score) => item.score = score,
                            None => not_double = true,
                        }
                    }
                }
                items.push(item);
            }
            let order = Order {
                alpha,
                by: by.is_some(),
                store: self.store.is_some(),
                desc: self.desc,
            };
            items.sort_by(|a, b| order.compare(a, b));
            if not_double {
                return Err(Output::err(NOT_DOUBLE));
            }
            items.into_iter().map(|i| i.element).collect()
        };
        let window = if end >= start {
            elements
                .into_iter()
                .skip(start as usize)
                .take((end - start + 1) as usize)
                .collect()
        } else {
            Vec::new()
        };
        Ok(Sorted { elements: window })
    }

    /// The reply items: each element, or its GET values (nil when missing).
    fn output(&self, db: &Db, ctx: &Ctx, sorted: Sorted) -> Vec<Option<Bytes>> {
        if self.gets.is_empty() {
            return sorted.elements.into_iter().map(Some).collect();
        }
        let mut out = Vec::with_capacity(sorted.elements.len() * self.gets.len());
        for element in &sorted.elements {
            for pattern in &self.gets {
                out.push(lookup_pattern(db, ctx, pattern, element));
            }
        }
        out
    }
}

fn reply(items: Vec<Option<Bytes>>) -> Output {
    Output::Array(items.into_iter().map(Output::Bulk).collect())
}

impl Apply<'_> for Sort {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        // Redis reads the key with `lookupKeyRead`: a miss is a `keymiss`.
        let value = db.lookup_write_as_read(ctx.db, &self.key).map(|e| &e.value);
        let is_packed_zset = match value {
            None | Some(Value::List(_) | Value::Set(_)) => false,
            Some(Value::ZSet(z)) => z.encoding() == "listpack",
            Some(_) => return Output::err(WRONGTYPE),
        };
        if is_packed_zset {
            db.convert_quietly(ctx.db, &self.key, |v| {
                if let Value::ZSet(z) = v {
                    z.convert_to_skiplist();
                }
            });
        }
        let db_ref: &Db = db;
        let source = match Source::of(
            db_ref.dbs[ctx.db]
                .live(&self.key, ctx.now)
                .map(|e| &e.value),
        ) {
            Ok(source) => source,
            Err(error) => return error,
        };
        let sorted = match self.run(db_ref, ctx, &source) {
            Ok(sorted) => sorted,
            Err(error) => return error,
        };
        let items = self.output(db_ref, ctx, sorted);
        let Some(dst) = &self.store else {
            return reply(items);
        };
        let count = items.len();
        if count == 0 {
            // Redis's dbDelete: an expired destination is deleted (a
            // `del`), not expired.
            if db.remove(ctx.db, dst).is_some() {
                db.notify(notify::GENERIC, "del", ctx.db, dst);
            }
        } else {
            let list: List = items
                .iter()
                .map(|i| i.as_deref().unwrap_or_default())
                .collect();
            db.expire_if_needed(ctx.db, dst);
            db.put(ctx.db, dst, Value::List(list), None);
            db.notify(notify::LIST, "sortstore", ctx.db, dst);
        }
        Output::Integer(count as i64)
    }
}

impl Query<'_> for SortRo {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        let source = match Source::of(
            db.lookup_read(ctx.db, &self.0.key, ctx.now)
                .map(|e| &e.value),
        ) {
            Ok(source) => source,
            Err(error) => return error,
        };
        match self.0.run(db, ctx, &source) {
            Ok(sorted) => reply(self.0.output(db, ctx, sorted)),
            Err(error) => error,
        }
    }
}

/// Redis's `sortGetKeys`: the sorted key, and the last `STORE` destination
/// (skipping the arguments of LIMIT, GET and BY, as Redis does).
fn sort_keys(args: &[Bytes]) -> Vec<usize> {
    let mut keys = vec![1];
    let mut store = None;
    let mut i = 2;
    while i < args.len() {
        let word = &args[i];
        if word.eq_ignore_ascii_case(b"limit") {
            i += 2;
        } else if word.eq_ignore_ascii_case(b"get") || word.eq_ignore_ascii_case(b"by") {
            i += 1;
        } else if word.eq_ignore_ascii_case(b"store") && i + 1 < args.len() {
            store = Some(i + 1);
        }
        i += 1;
    }
    keys.extend(store);
    keys
}

/// Redis's `sortROGetKeys`: the sorted key only.
fn sort_ro_keys(args: &[Bytes]) -> Vec<usize> {
    if args.len() > 1 {
        vec![1]
    } else {
        Vec::new()
    }
}

use super::table::{typed_read, typed_write};
use crate::cmd::cat::*;
use crate::cmd::{read, write, CommandSpec, K1};

const KEY_GROUP: &str = "@keyspace";

/// SORT and SORT_RO, as Redis 7.0.15's `COMMAND INFO` shows them.
pub(crate) static COMMANDS: &[CommandSpec] = &[
    write("sort", -2, F_DENYOOM, KEY_GROUP, K1, typed_write::<Sort>())
        .keys_by(sort_keys)
        .acl(cats(&[WRITE, SET, SORTEDSET, LIST, SLOW, DANGEROUS]), (KA_R, KA_W))
        .doc("Sort the elements in a list, set or sorted set", "1.0.0", "O(N+M*log(M)) where N is the number of elements in the list or set to sort, and M the number of returned elements. When the elements are not sorted, complexity is O(N)."),
    read("sort_ro", -2, F_NONE, KEY_GROUP, K1, typed_read::<SortRo>())
        .keys_by(sort_ro_keys)
        .acl(cats(&[READ, SET, SORTEDSET, LIST, SLOW, DANGEROUS]), (KA_R, KA_NONE))
        .doc("Sort the elements in a list, set or sorted set. Read-only variant of SORT.", "7.0.0", "O(N+M*log(M)) where N is the number of elements in the list or set to sort, and M the number of returned elements. When the elements are not sorted, complexity is O(N)."),
];

#[cfg(test)]
mod tests;
