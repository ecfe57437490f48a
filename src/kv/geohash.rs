//! Redis 7.0's geohash, step for step (`geohash.c`, `geohash_helper.c`), so
//! that scores, decoded positions, distances and the cells a search visits
//! are bit-identical to Redis's on the same machine.
//!
//! - A position is encoded on 26 steps: latitude (limited to
//!   ±[`LAT_MAX`], the Web-Mercator limits) and longitude each scaled to a
//!   26-bit integer, interleaved into 52 bits — latitude in the even bits,
//!   longitude in the odd ones. The sorted-set score is those 52 bits as a
//!   double (exact: below 2^53).
//! - Decoding gives the centre of the cell, clamped to the limits.
//! - Distances are Redis's haversine on a sphere of radius
//!   [`EARTH_RADIUS_M`], with its shortcut for points on one meridian.
//! - A search covers its shape with the cell holding the centre and its 8
//!   neighbours at a step estimated from the radius ([`areas_for_shape`]).
//!
//! Every operation is the same IEEE double arithmetic Redis does, in the same
//! order (no fused multiply-add: neither Redis's x86-64 build nor Rust emit
//! one), and the transcendental functions are the C library's, as Redis's.
//! Pure and deterministic; no I/O.

/// Bits per coordinate (`GEO_STEP_MAX`): 26 × 2 = 52 bits.
pub const STEP_MAX: u8 = 26;
/// The northern limit (EPSG:900913).
pub const LAT_MAX: f64 = 85.05112878;
/// The southern limit.
pub const LAT_MIN: f64 = -85.05112878;
/// The eastern limit.
pub const LONG_MAX: f64 = 180.0;
/// The western limit.
pub const LONG_MIN: f64 = -180.0;
/// Redis's Earth radius in meters (WGS-84 quadratic mean).
pub const EARTH_RADIUS_M: f64 = 6372797.560856;
/// Half the Mercator world's width in meters, for the step estimate.
const MERCATOR_MAX: f64 = 20037726.37;
/// Degrees to radians (`M_PI / 180.0`).
const D_R: f64 = std::f64::consts::PI / 180.0;

fn deg_rad(degrees: f64) -> f64 {
    degrees * D_R
}

fn rad_deg(radians: f64) -> f64 {
    radians / D_R
}

/// A cell: its interleaved bits and its step (bits per coordinate). Step 0
/// with bits 0 is "no cell" (a neighbour a search left out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashBits {
    /// Interleaved bits, `2 × step` of them.
    pub bits: u64,
    /// Bits per coordinate.
    pub step: u8,
}

impl HashBits {
    /// No cell.
    pub const ZERO: HashBits = HashBits { bits: 0, step: 0 };

    /// True for "no cell".
    pub fn is_zero(&self) -> bool {
        self.bits == 0 && self.step == 0
    }

    /// The bits shifted to 52 (`geohashAlign52Bits`): the smallest score in
    /// the cell.
    pub fn align52(&self) -> u64 {
        self.bits << (52 - u32::from(self.step) * 2)
    }
}

/// A closed interval of degrees.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    /// Lower bound.
    pub min: f64,
    /// Upper bound.
    pub max: f64,
}

/// Redis's coordinate limits for scores.
const LONG_RANGE: Range = Range {
    min: LONG_MIN,
    max: LONG_MAX,
};
const LAT_RANGE: Range = Range {
    min: LAT_MIN,
    max: LAT_MAX,
};

/// A cell's extent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Area {
    /// Longitudes covered.
    pub longitude: Range,
    /// Latitudes covered.
    pub latitude: Range,
}

/// Spreads the low 32 bits of `v` to the even bit positions.
fn spread(v: u32) -> u64 {
    let mut x = u64::from(v);
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    (x | (x << 1)) & 0x5555_5555_5555_5555
}

/// Gathers the even bit positions of `v` into the low 32 bits.
fn gather(v: u64) -> u32 {
    let mut x = v & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x >> 16)) & 0x0000_0000_FFFF_FFFF;
    x as u32
}

/// `geohashEncode` over the given ranges: `None` outside Redis's limits or
/// the ranges.
fn encode_in(
    long_range: Range,
    lat_range: Range,
    longitude: f64,
    latitude: f64,
    step: u8,
) -> Option<HashBits> {
    if step == 0 || step > 32 {
        return None;
    }
    // Positions are never NaN here (parsed positions refuse it, decoded
    // ones are finite).
    if !(LONG_MIN..=LONG_MAX).contains(&longitude)
        || !(LAT_MIN..=LAT_MAX).contains(&latitude)
        || latitude < lat_range.min
        || latitude > lat_range.max
        || longitude < long_range.min
        || longitude > long_range.max
    {
        return None;
    }
    let scale = (1u64 << step) as f64;
    let lat_offset = (latitude - lat_range.min) / (lat_range.max - lat_range.min) * scale;
    let long_offset = (longitude - long_range.min) / (long_range.max - long_range.min) * scale;
    // C converts the offsets to uint32_t by truncation (they are in
    // [0, 2^step]).
    Some(HashBits {
        bits: spread(lat_offset as u32) | (spread(long_offset as u32) << 1),
        step,
    })
}

/// The cell of `step` bits per coordinate holding the position, on Redis's
/// limits (`geohashEncodeWGS84`); `None` outside them.
pub fn encode(longitude: f64, latitude: f64, step: u8) -> Option<HashBits> {
    encode_in(LONG_RANGE, LAT_RANGE, longitude, latitude, step)
}

/// The 52-bit score of a position (already checked to be within the limits).
pub fn score_of(longitude: f64, latitude: f64) -> Option<u64> {
    encode(longitude, latitude, STEP_MAX).map(|h| h.align52())
}

/// `geohashDecode` on Redis's limits: the cell's extent (`None` for "no cell").
pub fn decode(hash: HashBits) -> Option<Area> {
    if hash.is_zero() {
        return None;
    }
    let lat_cells = gather(hash.bits);
    let long_cells = gather(hash.bits >> 1);
    let cells = (1u64 << hash.step) as f64;
    let lat_scale = LAT_RANGE.max - LAT_RANGE.min;
    let long_scale = LONG_RANGE.max - LONG_RANGE.min;
    // `ilato + 1` is a uint32_t sum in C: it wraps.
    let edge = |min: f64, scale: f64, cell: u32| min + (f64::from(cell) * 1.0 / cells) * scale;
    Some(Area {
        latitude: Range {
            min: edge(LAT_RANGE.min, lat_scale, lat_cells),
            max: edge(LAT_RANGE.min, lat_scale, lat_cells.wrapping_add(1)),
        },
        longitude: Range {
            min: edge(LONG_RANGE.min, long_scale, long_cells),
            max: edge(LONG_RANGE.min, long_scale, long_cells.wrapping_add(1)),
        },
    })
}

/// `(uint64_t)score` as Redis's x86-64 build computes it: truncation toward
/// zero in range; scores from 2^63 up become 0 and negative ones or those
/// below -2^63 wrap (`cvttsd2si`), so any score decodes to some position.
pub fn score_bits(score: f64) -> u64 {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    fn cvttsd2si(d: f64) -> i64 {
        if d.is_nan() || !(-TWO_63..TWO_63).contains(&d) {
            i64::MIN
        } else {
            d as i64
        }
    }
    if score >= TWO_63 {
        (cvttsd2si(score - TWO_63) as u64) ^ (1 << 63)
    } else {
        cvttsd2si(score) as u64
    }
}

/// The position (longitude, latitude) a score stands for: the centre of its
/// cell, clamped to the limits (`decodeGeohash`).
pub fn decode_score(score: f64) -> (f64, f64) {
    let hash = HashBits {
        bits: score_bits(score),
        step: STEP_MAX,
    };
    let area = decode(hash).expect("a step-26 cell is never \"no cell\"");
    let longitude = ((area.longitude.min + area.longitude.max) / 2.0).clamp(LONG_MIN, LONG_MAX);
    let latitude = ((area.latitude.min + area.latitude.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    (longitude, latitude)
}

/// GEOHASH's 11-character string of a score: the decoded position encoded
/// again on the standard ±90° latitude range, 5 bits a character, the last
/// one always `0` (52 bits only).
pub fn geohash_string(score: f64) -> [u8; 11] {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (longitude, latitude) = decode_score(score);
    let standard = Range {
        min: -90.0,
        max: 90.0,
    };
    // A decoded position is always within the limits; Redis ignores the
    // encoder's result and uses bits 0 otherwise.
    let bits = encode_in(LONG_RANGE, standard, longitude, latitude, STEP_MAX).map_or(0, |h| h.bits);
    let mut out = [b'0'; 11];
    for (i, c) in out.iter_mut().enumerate().take(10) {
        *c = ALPHABET[((bits >> (52 - (i + 1) * 5)) & 0x1f) as usize];
    }
    out
}

const ODD_BITS: u64 = 0xaaaa_aaaa_aaaa_aaaa;
const EVEN_BITS: u64 = 0x5555_5555_5555_5555;

/// Moves a cell one step up (`d > 0`) or down along the coordinate held in
/// the `moving` bits, wrapping around the grid (`geohash_move_x` with the
/// odd, longitude bits: east/west; `geohash_move_y` with the even, latitude
/// bits: north/south).
fn move_along(hash: &mut HashBits, d: i8, moving: u64) {
    if d == 0 {
        return;
    }
    let width = 64 - u32::from(hash.step) * 2;
    let along = hash.bits & moving;
    let kept = hash.bits & !moving;
    // The other coordinate's bits set, so a carry or borrow crosses them.
    let zz = !moving >> width;
    let along = if d > 0 {
        along.wrapping_add(zz.wrapping_add(1))
    } else {
        (along | zz).wrapping_sub(zz.wrapping_add(1))
    };
    hash.bits = (along & (moving >> width)) | kept;
}

fn moved(hash: HashBits, dx: i8, dy: i8) -> HashBits {
    let mut h = hash;
    move_along(&mut h, dx, ODD_BITS);
    move_along(&mut h, dy, EVEN_BITS);
    h
}

/// A search's shape: a circle or an axis-aligned box around a centre,
/// sizes in the caller's unit (`conversion` meters each).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    /// BYRADIUS / GEORADIUS.
    Radius(f64),
    /// BYBOX width height.
    Box {
        /// East-west size.
        width: f64,
        /// North-south size.
        height: f64,
    },
}

/// A search: shape, centre and unit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Search {
    /// The shape, in the unit.
    pub shape: Shape,
    /// Centre longitude.
    pub longitude: f64,
    /// Centre latitude.
    pub latitude: f64,
    /// Meters per unit.
    pub conversion: f64,
}

/// The cells a search reads, in Redis's order: the centre's cell, then N,
/// S, E, W, NE, NW, SE, SW ([`HashBits::ZERO`] for a neighbour left out).
pub type Cells = [HashBits; 9];

/// `geohashEstimateStepsByRadius`: the step whose cells are about as wide
/// as the radius, one or two coarser near the poles.
pub fn estimate_step(range_meters: f64, latitude: f64) -> u8 {
    if range_meters == 0.0 {
        return 26;
    }
    let mut range = range_meters;
    let mut step: i32 = 1;
    while range < MERCATOR_MAX {
        range *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&latitude) {
        step -= 1;
        if !(-80.0..=80.0).contains(&latitude) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

/// `geohashBoundingBox`: (min longitude, min latitude, max longitude, max
/// latitude) of the search's shape.
pub fn bounding_box(search: &Search) -> [f64; 4] {
    let (height, width) = match search.shape {
        Shape::Radius(r) => (search.conversion * r, search.conversion * r),
        Shape::Box { width, height } => (
            search.conversion * (height / 2.0),
            search.conversion * (width / 2.0),
        ),
    };
    let (longitude, latitude) = (search.longitude, search.latitude);
    let lat_delta = rad_deg(height / EARTH_RADIUS_M);
    let long_delta_top = rad_deg(width / EARTH_RADIUS_M / deg_rad(latitude + lat_delta).cos());
    let long_delta_bottom = rad_deg(width / EARTH_RADIUS_M / deg_rad(latitude - lat_delta).cos());
    // The box is widest on the side nearer the equator.
    let long_delta = if latitude < 0.0 {
        long_delta_bottom
    } else {
        long_delta_top
    };
    [
        longitude - long_delta,
        latitude - lat_delta,
        longitude + long_delta,
        latitude + lat_delta,
    ]
}

/// `geohashCalculateAreasByShapeWGS84`: the cells covering the search.
pub fn areas_for_shape(search: &Search) -> Cells {
    let [min_lon, min_lat, max_lon, max_lat] = bounding_box(search);
    let radius_meters = match search.shape {
        Shape::Radius(r) => r,
        Shape::Box { width, height } => {
            ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt()
        }
    } * search.conversion;
    let (longitude, latitude) = (search.longitude, search.latitude);
    let mut step = estimate_step(radius_meters, latitude);
    // The centre is always within the limits (Redis ignores the encoder's
    // result).
    let cell_at =
        |step: u8| encode(longitude, latitude, step).unwrap_or(HashBits { bits: 0, step });
    let mut hash = cell_at(step);
    let area_of = |h: HashBits| {
        decode(h).unwrap_or(Area {
            longitude: Range { min: 0.0, max: 0.0 },
            latitude: Range { min: 0.0, max: 0.0 },
        })
    };
    // A centre near a cell's edge may need cells one step coarser for the
    // neighbours to reach the whole box.
    let north = area_of(moved(hash, 0, 1));
    let south = area_of(moved(hash, 0, -1));
    let east = area_of(moved(hash, 1, 0));
    let west = area_of(moved(hash, -1, 0));
    let decrease = north.latitude.max < max_lat
        || south.latitude.min > min_lat
        || east.longitude.max < max_lon
        || west.longitude.min > min_lon;
    if step > 1 && decrease {
        step -= 1;
        hash = cell_at(step);
    }
    let area = area_of(hash);
    let mut cells: Cells = [
        hash,
        moved(hash, 0, 1),
        moved(hash, 0, -1),
        moved(hash, 1, 0),
        moved(hash, -1, 0),
        moved(hash, 1, 1),
        moved(hash, -1, 1),
        moved(hash, 1, -1),
        moved(hash, -1, -1),
    ];
    // Leave out neighbours entirely outside the box.
    const N: usize = 1;
    const S: usize = 2;
    const E: usize = 3;
    const W: usize = 4;
    const NE: usize = 5;
    const NW: usize = 6;
    const SE: usize = 7;
    const SW: usize = 8;
    if step >= 2 {
        let mut drop = |which: [usize; 3]| {
            for i in which {
                cells[i] = HashBits::ZERO;
            }
        };
        if area.latitude.min < min_lat {
            drop([S, SW, SE]);
        }
        if area.latitude.max > max_lat {
            drop([N, NE, NW]);
        }
        if area.longitude.min < min_lon {
            drop([W, SW, NW]);
        }
        if area.longitude.max > max_lon {
            drop([E, SE, NE]);
        }
    }
    cells
}

/// The scores `[min, max)` of the positions inside a cell.
pub fn score_range(hash: HashBits) -> (u64, u64) {
    let min = hash.align52();
    let next = HashBits {
        bits: hash.bits.wrapping_add(1),
        step: hash.step,
    };
    (min, next.align52())
}

/// Distance along a meridian (`geohashGetLatDistance`).
pub fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_M * (deg_rad(lat2) - deg_rad(lat1)).abs()
}

/// Great-circle distance in meters (`geohashGetDistance`).
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let lon1r = deg_rad(lon1);
    let lon2r = deg_rad(lon2);
    let v = ((lon2r - lon1r) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let lat1r = deg_rad(lat1);
    let lat2r = deg_rad(lat2);
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_M * a.sqrt().asin()
}

/// The distance from the search's centre to a point if the point is inside
/// the shape (`geoWithinShape`: a radius compares the distance, a box the
/// distances along the meridian and the parallel).
pub fn within(search: &Search, longitude: f64, latitude: f64) -> Option<f64> {
    let (x1, y1) = (search.longitude, search.latitude);
    match search.shape {
        Shape::Radius(radius) => {
            let d = distance(x1, y1, longitude, latitude);
            if d > radius * search.conversion {
                None
            } else {
                Some(d)
            }
        }
        Shape::Box { width, height } => {
            let width_m = width * search.conversion;
            let height_m = height * search.conversion;
            if lat_distance(latitude, y1) > height_m / 2.0 {
                return None;
            }
            if distance(longitude, latitude, x1, latitude) > width_m / 2.0 {
                return None;
            }
            Some(distance(x1, y1, longitude, latitude))
        }
    }
}

#[cfg(test)]
mod tests;
