//! The GEO commands' generator (issue 16): GEOADD, GEOPOS, GEOHASH,
//! GEODIST, GEOSEARCH, GEOSEARCHSTORE, GEORADIUS, GEORADIUSBYMEMBER and the
//! `_RO` forms, every reply compared exactly (distances, coordinates and
//! hashes as printed, and the order of results, ties included).
//!
//! Points cluster where the geohash has its edge cases: near each other
//! (Sicily), across the antimeridian, at and near the latitude limits, at
//! the origin, at exact cell edges, and on identical coordinates (ties in
//! distance). Searches use radius 0, small and huge radii, boxes, every
//! unit, ASC/DESC/none, COUNT with and without ANY, and the STORE forms
//! (the stored set is then read back with ZRANGE … WITHSCORES). Sources are
//! the geo keys, sorted sets with arbitrary scores (`z0`, `zbig`) and keys
//! of other types; arguments are sometimes malformed.

use super::{b, cmd, key, Check, Cmd};
use dkv_integration::rng::Rng;

/// Geo keys; `gbig` gets past the 128-member listpack limit.
const GEO_KEYS: &[&str] = &["g0", "g1", "g0", "gbig"];
const MEMBERS: &[&str] = &[
    "p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "Palermo", "", "m1",
];
const UNITS: &[&str] = &["m", "km", "ft", "mi", "KM", "Mi", "parsec"];

fn geo_key(r: &mut Rng) -> Vec<u8> {
    match r.below(20) {
        0 => b(r.pick(&["z0", "zbig"])),
        1 => key(r),
        _ => b(r.pick(GEO_KEYS)),
    }
}

fn member(r: &mut Rng) -> Vec<u8> {
    if r.chance(5) {
        format!("b{}", r.below(140)).into_bytes()
    } else {
        b(r.pick(MEMBERS))
    }
}

/// Places where the geohash has edge cases: (longitude, latitude, jitter
/// in degrees).
const PLACES: &[(f64, f64, f64)] = &[
    (13.361389, 38.115556, 0.5),
    (15.087269, 37.502669, 0.01),
    (179.9999, -0.5, 0.0002),
    (-179.9999, 0.5, 0.0002),
    (0.0, 0.0, 0.00001),
    (45.0, 85.05, 0.002),
    (-120.0, -85.0511, 0.0001),
    (90.0, 45.0, 0.0),
    (-0.5, 66.5, 1.0),
];

/// A longitude and latitude: mostly near a place, sometimes exact limits,
/// sometimes out of range or not a number.
fn position(r: &mut Rng) -> [Vec<u8>; 2] {
    match r.below(30) {
        0 => [
            b(r.pick(&["180", "-180", "0", "-0"])),
            b(r.pick(&["85.05112878", "-85.05112878", "0", "1e-10"])),
        ],
        1 => [
            b(r.pick(&["180.000001", "-181", "x", "nan", "inf", "1e400", ""])),
            b("1"),
        ],
        2 => [
            b("1"),
            b(r.pick(&["85.06", "-85.05112879", "90", "x", "-inf"])),
        ],
        _ => {
            let (lon, lat, jitter) = PLACES[r.below(PLACES.len())];
            let mut shift = |base: f64, limit: f64| {
                let steps = r.below(2001) as f64 - 1000.0;
                (base + steps / 1000.0 * jitter).clamp(-limit, limit)
            };
            let lon = shift(lon, 180.0);
            let lat = shift(lat, 85.05112878);
            let digits = r.below(8);
            [
                format!("{lon:.digits$}").into_bytes(),
                format!("{lat:.digits$}").into_bytes(),
            ]
        }
    }
}

fn radius(r: &mut Rng) -> Vec<u8> {
    b(r.pick(&[
        "0", "0", "1", "10", "50", "200", "500", "1000", "5000", "20000", "40000", "0.5", "1e7",
        "-1", "x", "inf",
    ]))
}

fn unit(r: &mut Rng) -> Vec<u8> {
    if r.chance(95) {
        b(r.pick(&UNITS[..4]))
    } else {
        b(r.pick(UNITS))
    }
}

/// The options after the centre and shape, in a random order.
fn options(r: &mut Rng, a: &mut Vec<Vec<u8>>, store: bool) {
    let mut groups: Vec<Vec<Vec<u8>>> = Vec::new();
    if !store || r.chance(10) {
        for word in ["WITHDIST", "WITHCOORD", "WITHHASH"] {
            if r.chance(40) {
                groups.push(vec![b(word)]);
            }
        }
    }
    if r.chance(60) {
        groups.push(vec![b(r.pick(&["ASC", "DESC", "asc", "desc"]))]);
    }
    if r.chance(50) {
        let mut count = vec![
            b("COUNT"),
            b(r.pick(&["1", "2", "3", "5", "100", "0", "-1", "x"])),
        ];
        if r.chance(40) {
            count.push(b("ANY"));
        }
        groups.push(count);
    } else if r.chance(3) {
        groups.push(vec![b("ANY")]);
    }
    if r.chance(3) {
        groups.push(vec![b(r.pick(&["BOGUS", "STORE", "COUNT"]))]);
    }
    while !groups.is_empty() {
        let g = groups.remove(r.below(groups.len()));
        a.extend(g);
    }
}

/// GEOSEARCH's FROM and BY parts (sometimes missing, doubled or crossed).
fn search_spec(r: &mut Rng, a: &mut Vec<Vec<u8>>) {
    let mut groups: Vec<Vec<Vec<u8>>> = Vec::new();
    match r.below(12) {
        0 => {}
        1..=5 => groups.push(vec![b("FROMMEMBER"), member(r)]),
        _ => {
            let [lon, lat] = position(r);
            groups.push(vec![b("FROMLONLAT"), lon, lat]);
        }
    }
    match r.below(12) {
        0 => {}
        1..=6 => groups.push(vec![b("BYRADIUS"), radius(r), unit(r)]),
        _ => groups.push(vec![b("BYBOX"), radius(r), radius(r), unit(r)]),
    }
    if r.chance(4) {
        groups.push(vec![
            b(r.pick(&["FROMMEMBER", "BYBOX", "BYRADIUS"])),
            member(r),
            b("1"),
            b("km"),
        ]);
    }
    while !groups.is_empty() {
        let g = groups.remove(r.below(groups.len()));
        a.extend(g);
    }
}

fn destination(r: &mut Rng) -> Vec<u8> {
    b(r.pick(&["gd", "gd", "g1", "z0", "k0"]))
}

/// One geo command, or (for the STORE forms) the command then a read of
/// the destination: returned as a list to send in order.
pub(crate) fn gen_geo(r: &mut Rng) -> Vec<Cmd> {
    let k = geo_key(r);
    let exact = |args: Vec<Vec<u8>>| cmd(args, Check::Exact);
    match r.below(30) {
        0..=6 => {
            let mut a = vec![b("GEOADD"), b(r.pick(GEO_KEYS))];
            if r.chance(30) {
                a.push(b(r.pick(&["NX", "XX", "CH", "ch", "GT"])));
            }
            for _ in 0..1 + r.below(4) {
                a.extend(position(r));
                a.push(member(r));
            }
            if r.chance(4) {
                a.pop();
            }
            vec![exact(a)]
        }
        7 => {
            // Past the listpack limit: 130 points in a 1-degree square.
            let mut a = vec![b("GEOADD"), b("gbig")];
            for i in 0..130 {
                a.push(format!("{:.5}", 13.0 + r.below(100_000) as f64 / 100_000.0).into_bytes());
                a.push(format!("{:.5}", 38.0 + r.below(100_000) as f64 / 100_000.0).into_bytes());
                a.push(format!("b{i}").into_bytes());
            }
            vec![exact(a)]
        }
        8 | 9 => {
            let mut a = vec![b(r.pick(&["GEOPOS", "GEOHASH"])), k];
            for _ in 0..r.below(4) {
                a.push(member(r));
            }
            vec![exact(a)]
        }
        10 | 11 => {
            let mut a = vec![b("GEODIST"), k, member(r), member(r)];
            if r.chance(60) {
                a.push(unit(r));
            }
            if r.chance(3) {
                a.push(b("x"));
            }
            vec![exact(a)]
        }
        12..=17 => {
            let mut a = vec![b("GEOSEARCH"), k];
            search_spec(r, &mut a);
            options(r, &mut a, false);
            vec![exact(a)]
        }
        18..=20 => {
            let dst = destination(r);
            let mut a = vec![b("GEOSEARCHSTORE"), dst.clone(), k];
            search_spec(r, &mut a);
            options(r, &mut a, true);
            if r.chance(50) {
                a.push(b("STOREDIST"));
            }
            vec![
                exact(a),
                exact(vec![b("ZRANGE"), dst, b("0"), b("-1"), b("WITHSCORES")]),
            ]
        }
        _ => {
            let by_member = r.chance(50);
            let ro = r.chance(30);
            let name = match (by_member, ro) {
                (false, false) => "GEORADIUS",
                (false, true) => "GEORADIUS_RO",
                (true, false) => "GEORADIUSBYMEMBER",
                (true, true) => "GEORADIUSBYMEMBER_RO",
            };
            let mut a = vec![b(name), k];
            if by_member {
                a.push(member(r));
            } else {
                a.extend(position(r));
            }
            a.push(radius(r));
            a.push(unit(r));
            let store = !ro && r.chance(40) || r.chance(3);
            options(r, &mut a, store);
            let mut cmds = Vec::new();
            if store {
                let dst = destination(r);
                a.push(b(r.pick(&["STORE", "STOREDIST", "store"])));
                a.push(dst.clone());
                cmds.push(exact(a));
                cmds.push(exact(vec![
                    b("ZRANGE"),
                    dst,
                    b("0"),
                    b("-1"),
                    b("WITHSCORES"),
                ]));
            } else {
                cmds.push(exact(a));
            }
            cmds
        }
    }
}
