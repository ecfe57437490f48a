//! A bounded latency histogram with lock-free recording.
//!
//! Values (microseconds) fall into log-linear buckets: exact below 8, then
//! eight buckets per power of two, so a reported value is within 12.5% of
//! the truth, and everything from 2^[`TOP_POWER`] µs (about 13 days) up
//! shares the last bucket. The bucket array is fixed ([`BUCKETS`] atomics,
//! 2.5 KB), so recording is one relaxed add and never allocates or locks.

use std::sync::atomic::{AtomicU64, Ordering};

/// Sub-buckets per power of two (a power of two itself).
const SUB_BUCKETS: u64 = 8;
/// log2 of [`SUB_BUCKETS`].
const SUB_BITS: u32 = 3;
/// The highest power of two with buckets of its own.
const TOP_POWER: u32 = 40;
/// Number of buckets.
pub const BUCKETS: usize = (SUB_BUCKETS + (TOP_POWER - SUB_BITS + 1) as u64 * SUB_BUCKETS) as usize;

/// Counts of values per bucket.
#[derive(Debug)]
pub struct Histogram {
    counts: Box<[AtomicU64]>,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// The bucket `value` falls into.
fn bucket_of(value: u64) -> usize {
    if value < SUB_BUCKETS {
        return value as usize;
    }
    let power = (63 - value.leading_zeros()).min(TOP_POWER);
    if power == TOP_POWER && value >> TOP_POWER > 1 {
        return BUCKETS - 1;
    }
    let sub = (value >> (power - SUB_BITS)) & (SUB_BUCKETS - 1);
    (SUB_BUCKETS + u64::from(power - SUB_BITS) * SUB_BUCKETS + sub) as usize
}

/// The highest value bucket `index` holds.
fn bucket_high(index: usize) -> u64 {
    let index = index as u64;
    if index < SUB_BUCKETS {
        return index;
    }
    let power = (index - SUB_BUCKETS) / SUB_BUCKETS + u64::from(SUB_BITS);
    let sub = (index - SUB_BUCKETS) % SUB_BUCKETS;
    let width = 1u64 << (power - u64::from(SUB_BITS));
    ((SUB_BUCKETS + sub) << (power - u64::from(SUB_BITS))) + width - 1
}

impl Histogram {
    /// Counts one value.
    pub fn record(&self, value: u64) {
        self.counts[bucket_of(value)].fetch_add(1, Ordering::Relaxed);
    }

    /// Forgets every value (CONFIG RESETSTAT).
    pub fn reset(&self) {
        for count in self.counts.iter() {
            count.store(0, Ordering::Relaxed);
        }
    }

    fn snapshot(&self) -> Vec<u64> {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    /// Values counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// The value at each percentile in `percentiles` (0..=100): the highest
    /// value of the bucket holding it. All 0 when nothing was counted.
    pub fn percentiles(&self, percentiles: &[f64]) -> Vec<u64> {
        let counts = self.snapshot();
        let total: u64 = counts.iter().sum();
        percentiles
            .iter()
            .map(|p| {
                if total == 0 {
                    return 0;
                }
                let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
                let mut seen = 0;
                for (index, count) in counts.iter().enumerate() {
                    seen += count;
                    if seen >= rank {
                        return bucket_high(index);
                    }
                }
                bucket_high(BUCKETS - 1)
            })
            .collect()
    }

    /// Redis's `LATENCY HISTOGRAM` buckets: `(upper bound in µs, values at
    /// or below it)` for powers of two 1, 2, 4 ..., only where the count
    /// grows (Redis's `fillCommandCDF`).
    pub fn cumulative_powers_of_two(&self) -> Vec<(u64, u64)> {
        let counts = self.snapshot();
        let mut out = Vec::new();
        let mut seen = 0;
        let mut previous = 0;
        let mut index = 0;
        for power in 0..=TOP_POWER {
            let bound = 1u64 << power;
            while index < BUCKETS && bucket_high(index) <= bound {
                seen += counts[index];
                index += 1;
            }
            if power == TOP_POWER {
                seen += counts[index..].iter().sum::<u64>();
            }
            if seen > previous {
                out.push((bound, seen));
            }
            previous = seen;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for value in (0..5_000).chain([u64::MAX / 2, u64::MAX, 1 << 40, (1 << 41) - 1]) {
            let index = bucket_of(value);
            assert!(index < BUCKETS, "{value}");
            if value < 5_000 {
                assert!(index >= last, "{value}");
                last = index;
                assert!(bucket_high(index) >= value, "{value} above its bucket");
                // Within 12.5% of the value.
                assert!(bucket_high(index) - value <= value / 8, "{value}");
            }
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_are_bucket_bounds_of_the_ranked_value() {
        let h = Histogram::default();
        assert_eq!(h.percentiles(&[50.0, 99.0]), vec![0, 0]);
        for v in 1..=100 {
            h.record(v);
        }
        let p = h.percentiles(&[50.0, 99.0, 99.9, 100.0]);
        assert!((50..=56).contains(&p[0]), "{p:?}");
        assert!((99..=111).contains(&p[1]), "{p:?}");
        assert!((100..=111).contains(&p[2]), "{p:?}");
        assert_eq!(h.total(), 100);
        h.reset();
        assert_eq!(h.total(), 0);
    }

    #[test]
    fn cumulative_buckets_are_powers_of_two_and_grow() {
        let h = Histogram::default();
        for v in [0, 1, 3, 3, 100, 1 << 45] {
            h.record(v);
        }
        assert_eq!(
            h.cumulative_powers_of_two(),
            vec![(1, 2), (4, 4), (128, 5), (1 << TOP_POWER, 6)]
        );
    }
}
