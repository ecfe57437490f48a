//! The GEO commands (Redis 7.0.15's `geo.c`) on sorted sets whose scores
//! are 52-bit geohashes ([`super::geohash`]): GEOADD, GEODIST, GEOHASH,
//! GEOPOS, GEOSEARCH, GEOSEARCHSTORE, GEORADIUS, GEORADIUSBYMEMBER and the
//! `_RO` forms, with Redis's replies, numbers and error texts.
//!
//! - GEOADD is ZADD with the encoded scores (Redis rewrites it into ZADD):
//!   its replies, `CH`/`NX`/`XX` and keyspace events (`zadd`) are ZADD's.
//!   Its argument errors are found before proposing.
//! - The searches look the source key up *before* parsing their options,
//!   as Redis does: WRONGTYPE beats a syntax error, `FROMMEMBER` and
//!   GEORADIUSBYMEMBER read the member's position in the middle of the
//!   parse, and with the key missing GEORADIUSBYMEMBER does not even read
//!   its radius. So their checks accept every argument list of the right
//!   arity and every error comes from the run: a malformed GEOSEARCHSTORE
//!   or GEORADIUS costs a log entry and is answered from apply.
//! - Routing: Redis flags GEORADIUS and GEORADIUSBYMEMBER `write` with or
//!   without `STORE`, and so does dkv (one row, one kind, as SORT): they
//!   always go through the log; the `_RO` forms and GEOSEARCH are reads.
//! - Results come in Redis's order: the cells in Redis's order, members by
//!   score within a cell, then glibc's merge sort (all results) or Redis's
//!   partial quicksort (`COUNT` of more) by distance ([`super::geo_sort`]);
//!   ties therefore order as in Redis.
//! - Numbers print as Redis prints them: distances with 4 decimals
//!   (`fixedpoint_d2string`, a bulk string in RESP2 and RESP3), coordinates
//!   as `%.17Lf` without trailing zeros (a bulk string in RESP2, a double in
//!   RESP3), hashes as integers.
//! - Stored results (`STORE`, `STOREDIST`, GEOSEARCHSTORE) replace the
//!   destination (TTL dropped) with event `georadiusstore` /
//!   `geosearchstore`, or delete it (`del`) when nothing was found.

use bytes::Bytes;

use super::errors::{NOT_FLOAT, NOT_INTEGER, SYNTAX, WRONGTYPE};
use super::geo_sort::{merge_sort, partial_sort};
use super::geohash::{self, Search, Shape};
use super::table::{typed_read, typed_write, Apply, Parse, Query};
use super::zset::{ScoreRange, ZSet};
use super::zsets::{parse_score, read_zset, store_result, ZAdd};
use super::{parse_i64, Ctx, Db, Output, Value};
use crate::cmd::cat::*;
use crate::cmd::{read, write, CommandSpec, K1};

const GEO_GROUP: &str = "@geo";

const UNIT_ERROR: &str = "ERR unsupported unit provided. please use M, KM, FT, MI";
const NO_MEMBER: &str = "ERR could not decode requested zset member";

// ---- arguments -------------------------------------------------------------------

/// The bytes C string functions see (`strcasecmp` on Redis's arguments).
fn c_str(arg: &[u8]) -> &[u8] {
    arg.split(|&c| c == 0).next().unwrap_or(&[])
}

/// `strcasecmp(arg, word) == 0`.
fn is(arg: &[u8], word: &str) -> bool {
    c_str(arg).eq_ignore_ascii_case(word.as_bytes())
}

/// `getDoubleFromObjectOrReply` with Redis's message (`None`: "not a valid
/// float").
fn double_arg(arg: &[u8], message: Option<&str>) -> Result<f64, Output> {
    parse_score(arg).ok_or_else(|| Output::err(message.unwrap_or(NOT_FLOAT)))
}

/// `extractLongLatOrReply`: a longitude and a latitude within Redis's
/// limits.
fn long_lat(args: &[Bytes]) -> Result<(f64, f64), Output> {
    let longitude = double_arg(&args[0], None)?;
    let latitude = double_arg(&args[1], None)?;
    if !(geohash::LONG_MIN..=geohash::LONG_MAX).contains(&longitude)
        || !(geohash::LAT_MIN..=geohash::LAT_MAX).contains(&latitude)
    {
        return Err(Output::err(format!(
            "ERR invalid longitude,latitude pair {longitude:.6},{latitude:.6}"
        )));
    }
    Ok((longitude, latitude))
}

/// `extractUnitOrReply`: meters per unit.
fn unit(arg: &[u8]) -> Result<f64, Output> {
    let unit = c_str(arg);
    [("m", 1.0), ("km", 1000.0), ("ft", 0.3048), ("mi", 1609.34)]
        .into_iter()
        .find(|(name, _)| unit.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, meters)| meters)
        .ok_or_else(|| Output::err(UNIT_ERROR))
}

/// `extractDistanceOrReply`: `radius unit` → (radius, meters per unit).
fn radius_arg(args: &[Bytes]) -> Result<(f64, f64), Output> {
    let radius = double_arg(&args[0], Some("ERR need numeric radius"))?;
    if radius < 0.0 {
        return Err(Output::err("ERR radius cannot be negative"));
    }
    Ok((radius, unit(&args[1])?))
}

/// `extractBoxOrReply`: `width height unit`.
fn box_arg(args: &[Bytes]) -> Result<(f64, f64, f64), Output> {
    let width = double_arg(&args[0], Some("ERR need numeric width"))?;
    let height = double_arg(&args[1], Some("ERR need numeric height"))?;
    if height < 0.0 || width < 0.0 {
        return Err(Output::err("ERR height or width cannot be negative"));
    }
    Ok((width, height, unit(&args[2])?))
}

// ---- number formats --------------------------------------------------------------

/// `llrint` on x86-64: to nearest, ties to even; NaN and out-of-range
/// values give `i64::MIN`.
fn llrint(x: f64) -> i64 {
    let rounded = x.round_ties_even();
    if (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&rounded) {
        rounded as i64
    } else {
        i64::MIN
    }
}

/// A distance as Redis prints it (`fixedpoint_d2string(.., 4)`).
pub(crate) fn distance_text(d: f64) -> String {
    if d == 0.0 {
        return "0.0000".into();
    }
    let scaled = llrint(d * 10000.0);
    let magnitude = scaled.unsigned_abs();
    let sign = if scaled < 0 { "-" } else { "" };
    format!("{sign}{}.{:04}", magnitude / 10000, magnitude % 10000)
}

/// A coordinate as Redis prints it (`addReplyHumanLongDouble`).
pub(crate) fn coordinate_text(x: f64) -> String {
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    let mut text = format!("{x:.17}");
    if text.contains('.') {
        let kept = text.trim_end_matches('0').trim_end_matches('.').len();
        text.truncate(kept);
    }
    if text == "-0" {
        text = "0".into();
    }
    text
}

fn coordinates_reply(longitude: f64, latitude: f64) -> Output {
    Output::Array(vec![
        Output::Double(coordinate_text(longitude)),
        Output::Double(coordinate_text(latitude)),
    ])
}

// ---- GEOADD ------------------------------------------------------------------------

/// `GEOADD key [NX|XX] [CH] longitude latitude member …`: ZADD of the
/// positions' scores.
pub(crate) struct GeoAdd(ZAdd);

impl Parse<'_> for GeoAdd {
    fn parse(args: &[Bytes]) -> Result<GeoAdd, Output> {
        let mut zadd = vec![Bytes::from_static(b"zadd"), args[1].clone()];
        let (mut nx, mut xx) = (false, false);
        let mut at = 2;
        while at < args.len() {
            let option: &'static [u8] = if is(&args[at], "nx") {
                nx = true;
                b"nx"
            } else if is(&args[at], "xx") {
                xx = true;
                b"xx"
            } else if is(&args[at], "ch") {
                b"ch"
            } else {
                break;
            };
            zadd.push(Bytes::from_static(option));
            at += 1;
        }
        if (args.len() - at) % 3 != 0 || (nx && xx) {
            return Err(Output::err(SYNTAX));
        }
        for triple in args[at..].chunks(3) {
            let (longitude, latitude) = long_lat(triple)?;
            let score = geohash::score_of(longitude, latitude)
                .expect("a position within the limits encodes");
            zadd.push(Bytes::from(score.to_string()));
            zadd.push(triple[2].clone());
        }
        ZAdd::parse(&zadd).map(GeoAdd)
    }
}

impl super::table::Unchanged<'_> for GeoAdd {
    fn unchanged(&self, db: &Db, ctx: &Ctx) -> Option<Output> {
        self.0.unchanged(db, ctx)
    }
}

impl Apply<'_> for GeoAdd {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        self.0.apply(db, ctx)
    }
}

// ---- GEOPOS / GEOHASH / GEODIST ----------------------------------------------------

/// `GEOPOS key member …` and `GEOHASH key member …`.
pub(crate) struct GeoPos {
    key: Bytes,
    members: Vec<Bytes>,
    hash: bool,
}

impl Parse<'_> for GeoPos {
    fn parse(args: &[Bytes]) -> Result<GeoPos, Output> {
        Ok(GeoPos {
            key: args[1].clone(),
            members: args[2..].to_vec(),
            hash: args[0].eq_ignore_ascii_case(b"geohash"),
        })
    }
}

impl Query<'_> for GeoPos {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        let z = match read_zset(db, ctx, &self.key) {
            Ok(z) => z,
            Err(e) => return e,
        };
        let reply = |member: &Bytes| match z.and_then(|z| z.score(member)) {
            None if self.hash => Output::NIL,
            None => Output::NilArray,
            Some(score) if self.hash => {
                Output::bulk(Bytes::copy_from_slice(&geohash::geohash_string(score)))
            }
            Some(score) => {
                let (longitude, latitude) = geohash::decode_score(score);
                coordinates_reply(longitude, latitude)
            }
        };
        Output::Array(self.members.iter().map(reply).collect())
    }
}

/// `GEODIST key member1 member2 [unit]`.
pub(crate) struct GeoDist {
    key: Bytes,
    members: [Bytes; 2],
    to_meters: f64,
}

impl Parse<'_> for GeoDist {
    fn parse(args: &[Bytes]) -> Result<GeoDist, Output> {
        let to_meters = match args.len() {
            4 => 1.0,
            5 => unit(&args[4])?,
            _ => return Err(Output::err(SYNTAX)),
        };
        Ok(GeoDist {
            key: args[1].clone(),
            members: [args[2].clone(), args[3].clone()],
            to_meters,
        })
    }
}

impl Query<'_> for GeoDist {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        let z = match read_zset(db, ctx, &self.key) {
            Ok(Some(z)) => z,
            Ok(None) => return Output::NIL,
            Err(e) => return e,
        };
        let (Some(a), Some(b)) = (z.score(&self.members[0]), z.score(&self.members[1])) else {
            return Output::NIL;
        };
        let (lon1, lat1) = geohash::decode_score(a);
        let (lon2, lat2) = geohash::decode_score(b);
        Output::bulk(distance_text(
            geohash::distance(lon1, lat1, lon2, lat2) / self.to_meters,
        ))
    }
}

// ---- searches ----------------------------------------------------------------------

/// Which search command (Redis's `georadiusGeneric` flags).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// GEORADIUS / GEORADIUS_RO (`ro`: no STORE).
    Radius { ro: bool },
    /// GEORADIUSBYMEMBER / GEORADIUSBYMEMBER_RO.
    ByMember { ro: bool },
    /// GEOSEARCH.
    Search,
    /// GEOSEARCHSTORE.
    SearchStore,
}

impl Variant {
    fn of(name: &[u8]) -> Variant {
        let name = name.to_ascii_lowercase();
        match name.as_slice() {
            b"georadius" => Variant::Radius { ro: false },
            b"georadius_ro" => Variant::Radius { ro: true },
            b"georadiusbymember" => Variant::ByMember { ro: false },
            b"georadiusbymember_ro" => Variant::ByMember { ro: true },
            b"geosearchstore" => Variant::SearchStore,
            _ => Variant::Search,
        }
    }

    fn is_search(self) -> bool {
        matches!(self, Variant::Search | Variant::SearchStore)
    }

    fn takes_store_key(self) -> bool {
        matches!(
            self,
            Variant::Radius { ro: false } | Variant::ByMember { ro: false }
        )
    }

    /// The source key's position.
    fn source_at(self) -> usize {
        if self == Variant::SearchStore {
            2
        } else {
            1
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Order {
    None,
    Asc,
    Desc,
}

/// A parsed search: what to find, how to sort and reply or store.
struct Plan {
    /// The shape and centre (absent when the source key is missing and the
    /// parse never needed them).
    search: Search,
    withdist: bool,
    withhash: bool,
    withcoord: bool,
    order: Order,
    any: bool,
    /// 0: no limit.
    count: u64,
    /// The destination and whether it gets distances (`STOREDIST`).
    store: Option<(Bytes, bool)>,
}

/// `georadiusGeneric`'s parse, with the source already looked up (`z`):
/// errors in Redis's order.
fn parse_search(args: &[Bytes], variant: Variant, z: Option<&ZSet>) -> Result<Plan, Output> {
    let member_position = |member: &Bytes| -> Result<(f64, f64), Output> {
        let z = z.expect("looked up only with a source");
        z.score(member)
            .map(geohash::decode_score)
            .ok_or_else(|| Output::err(NO_MEMBER))
    };
    let mut plan = Plan {
        search: Search {
            shape: Shape::Radius(0.0),
            longitude: 0.0,
            latitude: 0.0,
            conversion: 0.0,
        },
        withdist: false,
        withhash: false,
        withcoord: false,
        order: Order::None,
        any: false,
        count: 0,
        store: None,
    };
    // GEORADIUS's centre and radius, or GEORADIUSBYMEMBER's (not read at
    // all when its key is missing).
    let centre = match variant {
        Variant::Radius { .. } => Some((long_lat(&args[2..4])?, 4)),
        Variant::ByMember { .. } if z.is_some() => Some((member_position(&args[2])?, 3)),
        _ => None,
    };
    if let Some(((longitude, latitude), at)) = centre {
        let (radius, conversion) = radius_arg(&args[at..at + 2])?;
        plan.search = Search {
            shape: Shape::Radius(radius),
            longitude,
            latitude,
            conversion,
        };
    }
    let base = match variant {
        Variant::Radius { .. } => 6,
        Variant::ByMember { .. } => 5,
        Variant::Search => 2,
        Variant::SearchStore => {
            plan.store = Some((args[1].clone(), false));
            3
        }
    };
    let search = variant.is_search();
    let (mut from_member, mut from_lonlat, mut by_radius, mut by_box) =
        (false, false, false, false);
    let mut i = base;
    while i < args.len() {
        let arg = &args[i];
        let left = args.len() - i - 1;
        if is(arg, "withdist") {
            plan.withdist = true;
        } else if is(arg, "withhash") {
            plan.withhash = true;
        } else if is(arg, "withcoord") {
            plan.withcoord = true;
        } else if is(arg, "any") {
            plan.any = true;
        } else if is(arg, "asc") {
            plan.order = Order::Asc;
        } else if is(arg, "desc") {
            plan.order = Order::Desc;
        } else if is(arg, "count") && left >= 1 {
            let count = parse_i64(&args[i + 1]).ok_or_else(|| Output::err(NOT_INTEGER))?;
            if count <= 0 {
                return Err(Output::err("ERR COUNT must be > 0"));
            }
            plan.count = count as u64;
            i += 1;
        } else if (is(arg, "store") || is(arg, "storedist"))
            && left >= 1
            && variant.takes_store_key()
        {
            plan.store = Some((args[i + 1].clone(), is(arg, "storedist")));
            i += 1;
        } else if is(arg, "storedist") && variant == Variant::SearchStore {
            if let Some((_, dist)) = &mut plan.store {
                *dist = true;
            }
        } else if is(arg, "frommember") && left >= 1 && search && !from_lonlat {
            if z.is_some() {
                let (longitude, latitude) = member_position(&args[i + 1])?;
                plan.search.longitude = longitude;
                plan.search.latitude = latitude;
            }
            from_member = true;
            i += 1;
        } else if is(arg, "fromlonlat") && left >= 2 && search && !from_member {
            let (longitude, latitude) = long_lat(&args[i + 1..i + 3])?;
            plan.search.longitude = longitude;
            plan.search.latitude = latitude;
            from_lonlat = true;
            i += 2;
        } else if is(arg, "byradius") && left >= 2 && search && !by_box {
            let (radius, conversion) = radius_arg(&args[i + 1..i + 3])?;
            plan.search.shape = Shape::Radius(radius);
            plan.search.conversion = conversion;
            by_radius = true;
            i += 2;
        } else if is(arg, "bybox") && left >= 3 && search && !by_radius {
            let (width, height, conversion) = box_arg(&args[i + 1..i + 4])?;
            plan.search.shape = Shape::Box { width, height };
            plan.search.conversion = conversion;
            by_box = true;
            i += 3;
        } else {
            return Err(Output::err(SYNTAX));
        }
        i += 1;
    }
    if plan.store.is_some() && (plan.withdist || plan.withhash || plan.withcoord) {
        let what = if variant == Variant::SearchStore {
            "GEOSEARCHSTORE"
        } else {
            "STORE option in GEORADIUS"
        };
        return Err(Output::err(format!(
            "ERR {what} is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        )));
    }
    let name = String::from_utf8_lossy(c_str(&args[0]));
    if search && !(from_member || from_lonlat) {
        return Err(Output::err(format!(
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"
        )));
    }
    if search && !(by_radius || by_box) {
        return Err(Output::err(format!(
            "ERR exactly one of BYRADIUS and BYBOX can be specified for {name}"
        )));
    }
    if plan.any && plan.count == 0 {
        return Err(Output::err("ERR the ANY argument requires COUNT argument"));
    }
    Ok(plan)
}

/// One point found.
#[derive(Clone)]
struct Point {
    member: Bytes,
    longitude: f64,
    latitude: f64,
    /// Meters until the reply or store divides by the unit.
    dist: f64,
    score: f64,
}

/// `membersOfAllNeighbors`: the points inside the shape, cell by cell in
/// Redis's order, members by score within a cell; with `limit` (ANY) it
/// stops once that many are found.
fn points_in_shape(z: &ZSet, search: &Search, limit: u64) -> Vec<Point> {
    let cells = geohash::areas_for_shape(search);
    let mut found: Vec<Point> = Vec::new();
    let full = |found: &Vec<Point>| limit > 0 && found.len() as u64 >= limit;
    let mut last_processed = 0;
    for (i, cell) in cells.iter().enumerate() {
        if cell.is_zero() {
            continue;
        }
        // With a huge radius adjacent neighbours can be the same cell.
        if last_processed != 0 && *cell == cells[last_processed] {
            continue;
        }
        if !found.is_empty() && full(&found) {
            break;
        }
        let (min, max) = geohash::score_range(*cell);
        let range = ScoreRange {
            min: min as f64,
            min_exclusive: false,
            max: max as f64,
            max_exclusive: true,
        };
        let (first, end) = z.score_span(&range);
        for (member, score) in z.iter_from(first, false).take(end.saturating_sub(first)) {
            let (longitude, latitude) = geohash::decode_score(score);
            if let Some(dist) = geohash::within(search, longitude, latitude) {
                found.push(Point {
                    member: Bytes::copy_from_slice(member),
                    longitude,
                    latitude,
                    dist,
                    score,
                });
            }
            if !found.is_empty() && full(&found) {
                break;
            }
        }
        last_processed = i;
    }
    found
}

/// Runs the plan over the source: the points to reply or store, sorted
/// and cut to `COUNT` as Redis does.
fn run_plan(plan: &Plan, z: &ZSet) -> Vec<Point> {
    let mut order = plan.order;
    if plan.count != 0 && order == Order::None && !plan.any {
        order = Order::Asc;
    }
    let limit = if plan.any { plan.count } else { 0 };
    let mut points = points_in_shape(z, &plan.search, limit);
    let total = points.len();
    let returned = if plan.count == 0 || (total as u64) < plan.count {
        total
    } else {
        plan.count as usize
    };
    if order != Order::None {
        let asc = |a: &Point, b: &Point| {
            if a.dist > b.dist {
                1
            } else if a.dist == b.dist {
                0
            } else {
                -1
            }
        };
        let cmp = |a: &Point, b: &Point| {
            if order == Order::Asc {
                asc(a, b)
            } else {
                -asc(a, b)
            }
        };
        if returned == total {
            merge_sort(&mut points, &cmp);
        } else {
            partial_sort(&mut points, &cmp, 0, returned - 1);
        }
    }
    points.truncate(returned);
    for point in &mut points {
        point.dist /= plan.search.conversion;
    }
    points
}

fn search_reply(plan: &Plan, points: Vec<Point>) -> Output {
    let with = plan.withdist || plan.withhash || plan.withcoord;
    let items = points.into_iter().map(|p| {
        if !with {
            return Output::bulk(p.member);
        }
        let mut item = vec![Output::bulk(p.member)];
        if plan.withdist {
            item.push(Output::bulk(distance_text(p.dist)));
        }
        if plan.withhash {
            // `(long long)score`: found scores are within [0, 2^52).
            item.push(Output::Integer(p.score as i64));
        }
        if plan.withcoord {
            item.push(coordinates_reply(p.longitude, p.latitude));
        }
        Output::Array(item)
    });
    Output::Array(items.collect())
}

/// GEOSEARCH, GEORADIUS_RO and GEORADIUSBYMEMBER_RO: reads.
pub(crate) struct GeoSearchRead {
    args: Vec<Bytes>,
}

impl Parse<'_> for GeoSearchRead {
    fn parse(args: &[Bytes]) -> Result<GeoSearchRead, Output> {
        // Every error needs the source key first (see the module docs).
        Ok(GeoSearchRead {
            args: args.to_vec(),
        })
    }
}

impl Query<'_> for GeoSearchRead {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        let variant = Variant::of(&self.args[0]);
        let z = match read_zset(db, ctx, &self.args[variant.source_at()]) {
            Ok(z) => z,
            Err(e) => return e,
        };
        let plan = match parse_search(&self.args, variant, z) {
            Ok(plan) => plan,
            Err(e) => return e,
        };
        match z {
            Some(z) => search_reply(&plan, run_plan(&plan, z)),
            None => Output::Array(Vec::new()),
        }
    }
}

/// GEORADIUS, GEORADIUSBYMEMBER (with or without STORE) and
/// GEOSEARCHSTORE: writes.
pub(crate) struct GeoSearchWrite {
    args: Vec<Bytes>,
}

impl Parse<'_> for GeoSearchWrite {
    fn parse(args: &[Bytes]) -> Result<GeoSearchWrite, Output> {
        // Every error needs the source key first (see the module docs).
        Ok(GeoSearchWrite {
            args: args.to_vec(),
        })
    }
}

impl Apply<'_> for GeoSearchWrite {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        let variant = Variant::of(&self.args[0]);
        let source = &self.args[variant.source_at()];
        // Redis reads the source with `lookupKeyRead` (a miss is a
        // `keymiss`), deleting it first if it expired.
        let z = match db.lookup_write_as_read(ctx.db, source).map(|e| &e.value) {
            None => None,
            Some(Value::ZSet(z)) => Some(&**z),
            Some(_) => return Output::err(WRONGTYPE),
        };
        let plan = match parse_search(&self.args, variant, z) {
            Ok(plan) => plan,
            Err(e) => return e,
        };
        let points = z.map(|z| run_plan(&plan, z));
        let Some((dst, storedist)) = plan.store.clone() else {
            return match points {
                Some(points) => search_reply(&plan, points),
                None => Output::Array(Vec::new()),
            };
        };
        let mut set = ZSet::new_skiplist();
        for p in points.unwrap_or_default() {
            let score = if storedist { p.dist } else { p.score };
            set.add(&p.member, score, Default::default());
        }
        set.convert_to_packed_if_small();
        let event = if variant == Variant::SearchStore {
            "geosearchstore"
        } else {
            "georadiusstore"
        };
        store_result(db, ctx, &dst, set, event)
    }
}

// ---- the table ---------------------------------------------------------------------

/// Redis's key specs for GEORADIUS / GEORADIUSBYMEMBER: the source, then
/// the key after the first `STORE`, then the key after the first
/// `STOREDIST`, each searched from `from` up to the second-to-last
/// argument.
fn store_keys(args: &[Bytes], from: usize) -> Vec<usize> {
    let mut keys = Vec::new();
    if args.len() > 1 {
        keys.push(1);
    }
    for keyword in ["store", "storedist"] {
        let found = (from..args.len().saturating_sub(1))
            .find(|&i| args[i].eq_ignore_ascii_case(keyword.as_bytes()));
        keys.extend(found.map(|i| i + 1));
    }
    keys
}

fn georadius_keys(args: &[Bytes]) -> Vec<usize> {
    store_keys(args, 6)
}

fn georadiusbymember_keys(args: &[Bytes]) -> Vec<usize> {
    store_keys(args, 5)
}

use crate::acl::Categories;
const GEO: Categories = Categories::GEO;
const SEARCH_COMPLEXITY: &str = "O(N+log(M)) where N is the number of elements in the grid-aligned bounding box area around the shape provided as the filter and M is the number of items inside the shape";
const RADIUS_COMPLEXITY: &str = "O(N+log(M)) where N is the number of elements inside the bounding box of the circular area delimited by center and radius and M is the number of items inside the index.";

/// The geo commands (Redis 7.0.15's `COMMAND INFO`).
pub(crate) static COMMANDS: &[CommandSpec] = &[
    write("geoadd", -5, F_DENYOOM, GEO_GROUP, K1, typed_write::<GeoAdd>())
        .unchanged_by(super::table::typed_unchanged::<GeoAdd>())
        .acl(cats(&[WRITE, GEO, SLOW]), (KA_RW, KA_RW))
        .doc("Add one or more geospatial items in the geospatial index represented using a sorted set", "3.2.0", "O(log(N)) for each item added, where N is the number of elements in the sorted set."),
    read("geodist", -4, F_NONE, GEO_GROUP, K1, typed_read::<GeoDist>())
        .acl(cats(&[READ, GEO, SLOW]), (KA_R, KA_R))
        .doc("Returns the distance between two members of a geospatial index", "3.2.0", "O(log(N))"),
    read("geohash", -2, F_NONE, GEO_GROUP, K1, typed_read::<GeoPos>())
        .acl(cats(&[READ, GEO, SLOW]), (KA_R, KA_R))
        .doc("Returns members of a geospatial index as standard geohash strings", "3.2.0", "O(log(N)) for each member requested, where N is the number of elements in the sorted set."),
    read("geopos", -2, F_NONE, GEO_GROUP, K1, typed_read::<GeoPos>())
        .acl(cats(&[READ, GEO, SLOW]), (KA_R, KA_R))
        .doc("Returns longitude and latitude of members of a geospatial index", "3.2.0", "O(N) where N is the number of members requested."),
    write("georadius", -6, F_DENYOOM, GEO_GROUP, K1, typed_write::<GeoSearchWrite>())
        .keys_by(georadius_keys)
        .acl(cats(&[WRITE, GEO, SLOW]), (KA_R, KA_W))
        .doc("Query a sorted set representing a geospatial index to fetch members matching a given maximum distance from a point", "3.2.0", RADIUS_COMPLEXITY),
    read("georadius_ro", -6, F_NONE, GEO_GROUP, K1, typed_read::<GeoSearchRead>())
        .acl(cats(&[READ, GEO, SLOW]), (KA_R, KA_R))
        .doc("A read-only variant for GEORADIUS", "3.2.10", RADIUS_COMPLEXITY),
    write("georadiusbymember", -5, F_DENYOOM, GEO_GROUP, K1, typed_write::<GeoSearchWrite>())
        .keys_by(georadiusbymember_keys)
        .acl(cats(&[WRITE, GEO, SLOW]), (KA_R, KA_W))
        .doc("Query a sorted set representing a geospatial index to fetch members matching a given maximum distance from a member", "3.2.0", RADIUS_COMPLEXITY),
    read("georadiusbymember_ro", -5, F_NONE, GEO_GROUP, K1, typed_read::<GeoSearchRead>())
        .acl(cats(&[READ, GEO, SLOW]), (KA_R, KA_R))
        .doc("A read-only variant for GEORADIUSBYMEMBER", "3.2.10", RADIUS_COMPLEXITY),
    read("geosearch", -7, F_NONE, GEO_GROUP, K1, typed_read::<GeoSearchRead>())
        .acl(cats(&[READ, GEO, SLOW]), (KA_R, KA_R))
        .doc("Query a sorted set representing a geospatial index to fetch members inside an area of a box or a circle.", "6.2.0", SEARCH_COMPLEXITY),
    write("geosearchstore", -8, F_DENYOOM, GEO_GROUP, (1, 2, 1), typed_write::<GeoSearchWrite>())
        .acl(cats(&[WRITE, GEO, SLOW]), (KA_W, KA_R))
        .doc("Query a sorted set representing a geospatial index to fetch members inside an area of a box or a circle, and store the result in another key.", "6.2.0", SEARCH_COMPLEXITY),
];

#[cfg(test)]
mod tests;
