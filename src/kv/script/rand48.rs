//! Redis's `math.random`: the 48-bit linear congruential generator of
//! `rand48` (`x' = a·x + c mod 2^48`), as Redis ships it in `rand.c`, so a
//! script draws the same numbers here as on real Redis.
//!
//! Invariant: the state is a pure value. As in Redis 7.0, one stream runs
//! across calls: it starts at [`Rand48::START`] (a fresh Redis's state) and
//! lives in `Db` as replicated state (in snapshots), advanced by the calls
//! that run at apply; a read-only call draws from a copy (see the engine's
//! module docs).

/// The generator's state (48 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rand48(u64);

const A: u64 = 0x5_DEEC_E66D;
const C: u64 = 0xB;
const MASK: u64 = (1 << 48) - 1;

/// Redis's `REDIS_LRAND48_MAX` (`INT32_MAX`).
pub(crate) const LRAND48_MAX: i64 = i32::MAX as i64;

impl Default for Rand48 {
    fn default() -> Rand48 {
        Rand48::START
    }
}

impl Rand48 {
    /// The state before any seeding: rand48's `X0 X1 X2` (`0x1234ABCD330E`).
    pub(crate) const START: Rand48 = Rand48(0x1234_ABCD_330E);

    /// The 48-bit state, as snapshots keep it.
    pub(crate) fn state(self) -> u64 {
        self.0
    }

    /// A generator at a state from [`Rand48::state`] (masked to 48 bits).
    pub(crate) fn from_state(state: u64) -> Rand48 {
        Rand48(state & MASK)
    }

    /// `redisSrand48(seed)`: the seed's 32 bits above `0x330E`.
    pub(crate) fn seeded(seed: i32) -> Rand48 {
        Rand48((u64::from(seed as u32) << 16) | 0x330E)
    }

    /// `redisLrand48()`: the next 31-bit value.
    pub(crate) fn next(&mut self) -> i64 {
        self.0 = (A.wrapping_mul(self.0).wrapping_add(C)) & MASK;
        (self.0 >> 17) as i64
    }

    /// The `[0, 1)` number `math.random` builds from one draw.
    pub(crate) fn next_unit(&mut self) -> f64 {
        (self.next() % LRAND48_MAX) as f64 / LRAND48_MAX as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `math.random(100)`, `(1,10)`, `(1000000)`, `(0,2147483646)` as the
    /// first script on a freshly started Redis 7.0.15 answers them:
    /// 40, 9, 353337, 959030623.
    #[test]
    fn draws_equal_a_fresh_redis() {
        let mut r = Rand48::START;
        let upper = |r: &mut Rand48, l: f64, u: f64| (r.next_unit() * (u - l + 1.0)).floor() + l;
        assert_eq!(upper(&mut r, 1.0, 100.0), 40.0);
        assert_eq!(upper(&mut r, 1.0, 10.0), 9.0);
        assert_eq!(upper(&mut r, 1.0, 1_000_000.0), 353_337.0);
        assert_eq!(upper(&mut r, 0.0, 2_147_483_646.0), 959_030_623.0);
        // math.randomseed(-5); math.random(1000000) → 816817.
        let mut r = Rand48::seeded(-5);
        assert_eq!(upper(&mut r, 1.0, 1_000_000.0), 816_817.0);
    }
}
