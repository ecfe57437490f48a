//! A small seeded generator (SplitMix64) for the differential tests: the
//! same seed gives the same command sequence on every machine, so a reported
//! difference replays exactly.

/// SplitMix64 over a `u64` state; `Rng(seed)` starts a sequence.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    /// One of `items` (not empty).
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// The seeds in environment variable `var` (`1,2,3`), or `default`'s.
///
/// # Errors
/// The variable is set but is not a comma-separated list of integers.
pub fn env_seeds(var: &str, default: &str) -> anyhow::Result<Vec<u64>> {
    use anyhow::Context;
    std::env::var(var)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .with_context(|| format!("{var} is a list of integers"))
        })
        .collect()
}

/// The count in environment variable `var`, or `default`.
///
/// # Errors
/// The variable is set but is not an integer.
pub fn env_count(var: &str, default: usize) -> anyhow::Result<usize> {
    use anyhow::Context;
    std::env::var(var).ok().map_or(Ok(default), |s| {
        s.trim()
            .parse()
            .with_context(|| format!("{var} is an integer"))
    })
}
