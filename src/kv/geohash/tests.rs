//! Geohash figures printed by redis-server 7.0.15 (GEOADD then ZSCORE,
//! GEOPOS, GEOHASH, GEODIST) for the same positions.

use super::*;
use crate::kv::geo::{coordinate_text, distance_text};

fn position(score: f64) -> (String, String) {
    let (longitude, latitude) = decode_score(score);
    (coordinate_text(longitude), coordinate_text(latitude))
}

fn hash_text(score: f64) -> String {
    String::from_utf8_lossy(&geohash_string(score)).into_owned()
}

#[test]
fn scores_are_redis_52_bit_hashes() {
    let cases: &[(f64, f64, u64)] = &[
        (13.361389, 38.115556, 3479099956230698),
        (-180.0, -85.05112878, 0),
        (0.0, 0.0, 3377699720527872),
        (-0.0000001, 0.0000001, 1876499844737706),
        (179.9999, -0.5, 3377678245412263),
        (-179.9999, -0.5, 375278493832973),
        // The north-east corner sets bits 52 and 53: 3 × 2^52.
        (180.0, 85.05112878, 13510798882111488),
    ];
    for &(longitude, latitude, score) in cases {
        assert_eq!(
            score_of(longitude, latitude),
            Some(score),
            "{longitude},{latitude}"
        );
    }
    assert_eq!(score_of(180.000001, 0.0), None);
    assert_eq!(score_of(0.0, 85.051129), None);
}

#[test]
fn decoding_gives_the_cell_centre_as_redis_prints_it() {
    let cases: &[(f64, &str, &str)] = &[
        (
            3479099956230698.0,
            "13.36138933897018433",
            "38.11555639549629859",
        ),
        (0.0, "-179.99999731779098511", "-85.05112751263942528"),
        (
            3377699720527872.0,
            "0.00000268220901489",
            "0.00000126736058093",
        ),
        (
            1876499844737706.0,
            "-0.00000268220901489",
            "0.00000126736058093",
        ),
        (
            3377678245412263.0,
            "179.99990075826644897",
            "-0.50000036325177888",
        ),
        (
            375278493832973.0,
            "-179.99990075826644897",
            "-0.50000036325177888",
        ),
        // Beyond the 52 bits or not a hash at all: Redis's x86-64 casts,
        // then the centre clamped to the limits.
        (13510798882111488.0, "180", "85.0511287799999991"),
        (-1.0, "180", "85.0511287799999991"),
        (1e30, "-179.99999731779098511", "-85.05112751263942528"),
        (
            f64::INFINITY,
            "-179.99999731779098511",
            "-85.05112751263942528",
        ),
        (f64::NEG_INFINITY, "180", "-85.05112751263942528"),
        (0.5, "-179.99999731779098511", "-85.05112751263942528"),
    ];
    for &(score, longitude, latitude) in cases {
        assert_eq!(
            position(score),
            (longitude.to_string(), latitude.to_string()),
            "{score}"
        );
    }
}

#[test]
fn geohash_strings_use_the_standard_latitude_range() {
    let cases: &[(f64, &str)] = &[
        (3479099956230698.0, "sqc8b49rny0"),
        (13510798882111488.0, "bp05b5048p0"),
        (0.0, "00bh0hbj200"),
        (3377699720527872.0, "s0000000000"),
        (1876499844737706.0, "ebpbpbpbpb0"),
        (3377678245412263.0, "rzzvpuzzm90"),
        (375278493832973.0, "2pbj0hbp630"),
        (-1.0, "bp05b5048p0"),
        (f64::NEG_INFINITY, "00bh0hbj200"),
    ];
    for &(score, text) in cases {
        assert_eq!(hash_text(score), text, "{score}");
    }
}

#[test]
fn distances_are_redis_haversine() {
    let between = |a: f64, b: f64, to_meters: f64| {
        let (lon1, lat1) = decode_score(a);
        let (lon2, lat2) = decode_score(b);
        distance_text(distance(lon1, lat1, lon2, lat2) / to_meters)
    };
    // Palermo–Catania in meters and km, across the antimeridian, pole to
    // pole in miles, 0.6 m in feet.
    let catania = score_of(15.087269, 37.502669).unwrap_or(0) as f64;
    assert_eq!(between(3479099956230698.0, catania, 1.0), "166274.1516");
    assert_eq!(between(3479099956230698.0, catania, 1000.0), "166.2742");
    assert_eq!(
        between(3377678245412263.0, 375278493832973.0, 1.0),
        "22.0757"
    );
    assert_eq!(between(13510798882111488.0, 0.0, 1609.34), "11756.2756");
    assert_eq!(
        between(3377699720527872.0, 1876499844737706.0, 0.3048),
        "1.9576"
    );
    assert_eq!(between(0.0, 0.0, 1.0), "0.0000");
}

#[test]
fn number_formats_are_redis() {
    assert_eq!(distance_text(0.00004), "0.0000");
    assert_eq!(distance_text(0.00006), "0.0001");
    assert_eq!(distance_text(12.5), "12.5000");
    assert_eq!(distance_text(-0.0), "0.0000");
    // llrint's NaN: LLONG_MIN.
    assert_eq!(distance_text(f64::NAN), "-922337203685477.5808");
    assert_eq!(coordinate_text(-0.0), "0");
    assert_eq!(coordinate_text(-1e-20), "0");
    assert_eq!(coordinate_text(2.5), "2.5");
    assert_eq!(coordinate_text(100.0), "100");
}

#[test]
fn step_estimates_follow_the_radius_and_latitude() {
    assert_eq!(estimate_step(0.0, 0.0), 26);
    assert_eq!(estimate_step(1e-300, 0.0), 26);
    assert_eq!(estimate_step(f64::INFINITY, 0.0), 1);
    // 1 km: 2^15 km > 20037 km, so 15 doublings, step 16 - 2.
    assert_eq!(estimate_step(1000.0, 0.0), 14);
    assert_eq!(estimate_step(1000.0, 70.0), 13);
    assert_eq!(estimate_step(1000.0, -81.0), 12);
}

#[test]
fn neighbours_wrap_around_the_grid() {
    let hash = encode(179.9999, 0.0, 3).unwrap_or(HashBits::ZERO);
    let east = moved(hash, 1, 0);
    let west = moved(hash, -1, 0);
    let area = |h: HashBits| decode(h).map(|a| (a.longitude.min, a.longitude.max));
    // The easternmost column's east neighbour is the westernmost column.
    assert_eq!(area(east), Some((-180.0, -135.0)));
    assert_eq!(area(west), Some((90.0, 135.0)));
    assert_eq!(moved(east, -1, 0), hash);
    let north = moved(hash, 0, 1);
    assert_eq!(moved(north, 0, -1), hash);
}

#[test]
fn a_search_reads_nine_cells_or_fewer() {
    let search = Search {
        shape: Shape::Radius(10.0),
        longitude: 13.361389,
        latitude: 38.115556,
        conversion: 1000.0,
    };
    let cells = areas_for_shape(&search);
    assert!(!cells[0].is_zero());
    assert!(cells.iter().all(|c| c.is_zero() || c.step == cells[0].step));
    // Each non-empty cell's score range holds its own 52-bit hashes.
    for cell in cells.iter().filter(|c| !c.is_zero()) {
        let (min, max) = score_range(*cell);
        assert!(min < max && max <= 1 << 52);
    }
    let palermo = 3479099956230698u64;
    let (min, max) = score_range(cells[0]);
    assert!((min..max).contains(&palermo));
}
