//! x87 80-bit `long double` arithmetic, for INCRBYFLOAT / HINCRBYFLOAT replies
//! identical to Redis's: Redis parses with `strtold` (correctly rounded to a
//! 64-bit significand), adds in `long double`, and prints with `"%.17Lf"`
//! minus trailing zeros (`ld2string(…, LD_STR_HUMAN)`). Rust has no `f80`, so
//! the value is a 64-bit significand and a binary exponent, and every step is
//! done exactly with a small big-integer type, then rounded half-to-even as
//! the hardware and glibc do. Pure and deterministic; no `unsafe`.
//!
//! Not supported (rejected as "not a valid float"): hexadecimal floats and
//! subnormal results, which `strtold` would accept.

use std::cmp::Ordering;

/// An unsigned big integer, little-endian 32-bit limbs, no leading zero limbs.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Big(Vec<u32>);

impl Big {
    fn from_u64(n: u64) -> Big {
        let mut b = Big(vec![n as u32, (n >> 32) as u32]);
        b.trim();
        b
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn is_zero(&self) -> bool {
        self.0.is_empty()
    }

    fn bits(&self) -> u64 {
        match self.0.last() {
            None => 0,
            Some(&top) => (self.0.len() as u64 - 1) * 32 + u64::from(32 - top.leading_zeros()),
        }
    }

    fn bit(&self, i: u64) -> bool {
        let limb = (i / 32) as usize;
        self.0.get(limb).is_some_and(|l| (l >> (i % 32)) & 1 == 1)
    }

    /// True if any bit below `n` is set.
    fn any_below(&self, n: u64) -> bool {
        let full = (n / 32) as usize;
        if self.0.iter().take(full).any(|&l| l != 0) {
            return true;
        }
        let rem = n % 32;
        rem > 0
            && self
                .0
                .get(full)
                .is_some_and(|&l| l & ((1u32 << rem) - 1) != 0)
    }

    fn mul_small(&mut self, m: u32) {
        let mut carry = 0u64;
        for limb in &mut self.0 {
            let v = u64::from(*limb) * u64::from(m) + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
        self.trim();
    }

    fn add_small(&mut self, a: u32) {
        let mut carry = u64::from(a);
        for limb in &mut self.0 {
            if carry == 0 {
                break;
            }
            let v = u64::from(*limb) + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
    }

    fn mul_pow(&mut self, base: u32, mut e: u64) {
        // base^13 fits in u32 for base <= 5; base 10: 10^9.
        let (chunk, step) = if base == 10 {
            (1_000_000_000u32, 9)
        } else {
            (1_220_703_125u32, 13)
        };
        while e >= step {
            self.mul_small(chunk);
            e -= step;
        }
        for _ in 0..e {
            self.mul_small(base);
        }
    }

    fn shl(&self, n: u64) -> Big {
        if self.is_zero() {
            return self.clone();
        }
        let (limbs, bits) = ((n / 32) as usize, (n % 32) as u32);
        let mut out = vec![0u32; limbs];
        let mut carry = 0u32;
        for &l in &self.0 {
            if bits == 0 {
                out.push(l);
            } else {
                out.push((l << bits) | carry);
                carry = l >> (32 - bits);
            }
        }
        if carry > 0 {
            out.push(carry);
        }
        let mut b = Big(out);
        b.trim();
        b
    }

    fn shr_u64(&self, n: u64) -> u64 {
        // The 64 bits starting at bit n.
        let mut v = 0u64;
        for i in 0..64 {
            if self.bit(n + i) {
                v |= 1 << i;
            }
        }
        v
    }

    fn cmp(&self, other: &Big) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.iter().rev().cmp(other.0.iter().rev()))
    }

    fn add(&self, other: &Big) -> Big {
        let n = self.0.len().max(other.0.len());
        let mut out = Vec::with_capacity(n + 1);
        let mut carry = 0u64;
        for i in 0..n {
            let v = u64::from(*self.0.get(i).unwrap_or(&0))
                + u64::from(*other.0.get(i).unwrap_or(&0))
                + carry;
            out.push(v as u32);
            carry = v >> 32;
        }
        if carry > 0 {
            out.push(carry as u32);
        }
        let mut b = Big(out);
        b.trim();
        b
    }

    /// `self - other`, requires `self >= other`.
    fn sub(&self, other: &Big) -> Big {
        let mut out = Vec::with_capacity(self.0.len());
        let mut borrow = 0i64;
        for i in 0..self.0.len() {
            let mut v = i64::from(self.0[i]) - i64::from(*other.0.get(i).unwrap_or(&0)) - borrow;
            borrow = 0;
            if v < 0 {
                v += 1 << 32;
                borrow = 1;
            }
            out.push(v as u32);
        }
        let mut b = Big(out);
        b.trim();
        b
    }

    /// `(self / d, self % d)` by shift-and-subtract (quotients here are ~67 bits).
    fn divmod(&self, d: &Big) -> (Big, Big) {
        let mut q = Big(vec![]);
        let mut r = self.clone();
        if self.cmp(d) == Ordering::Less {
            return (q, r);
        }
        let shift = self.bits() - d.bits();
        for i in (0..=shift).rev() {
            let s = d.shl(i);
            if r.cmp(&s) != Ordering::Less {
                r = r.sub(&s);
                q = q.add(&Big::from_u64(1).shl(i));
            }
        }
        (q, r)
    }

    fn divmod_small(&mut self, d: u32) -> u32 {
        let mut rem = 0u64;
        for limb in self.0.iter_mut().rev() {
            let v = (rem << 32) | u64::from(*limb);
            *limb = (v / u64::from(d)) as u32;
            rem = v % u64::from(d);
        }
        self.trim();
        rem as u32
    }

    fn to_decimal(&self) -> String {
        if self.is_zero() {
            return "0".to_string();
        }
        let mut n = self.clone();
        let mut parts = Vec::new();
        while !n.is_zero() {
            parts.push(n.divmod_small(1_000_000_000));
        }
        let mut s = parts.last().map(|p| p.to_string()).unwrap_or_default();
        for p in parts.iter().rev().skip(1) {
            s.push_str(&format!("{p:09}"));
        }
        s
    }
}

/// Largest binary exponent of the leading bit of a finite x87 value.
const MAX_EXP: i64 = 16383;
/// Smallest binary exponent of the leading bit of a normal x87 value.
const MIN_EXP: i64 = -16382;
/// Binary exponent of the smallest x87 subnormal (2^-16445).
const MIN_SUBNORMAL_EXP: i64 = -16445;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Zero,
    /// `significand × 2^exp`, significand's top bit set.
    Finite {
        significand: u64,
        exp: i64,
    },
    Inf,
}

/// An x87 extended-precision value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LongDouble {
    negative: bool,
    kind: Kind,
}

impl LongDouble {
    /// +0.
    pub const ZERO: LongDouble = LongDouble {
        negative: false,
        kind: Kind::Zero,
    };

    /// `(long long)(x * 1000)` as Redis computes a timeout in milliseconds
    /// from seconds on x86-64: truncated toward zero, and anything out of
    /// range (infinities included) becomes `i64::MIN`.
    pub fn times_1000_truncated(&self) -> i64 {
        let magnitude: Option<u128> = match self.kind {
            Kind::Zero => Some(0),
            Kind::Inf => None,
            // The significand's top bit is set, so any `exp >= 0` is at
            // least 2^63: out of range once multiplied.
            Kind::Finite { exp, .. } if exp >= 0 => None,
            Kind::Finite { significand, exp } => {
                // The x87 product is rounded to 64 significant bits (half to
                // even) before the cast truncates it.
                let mut product = u128::from(significand) * 1000;
                let extra = (128 - product.leading_zeros()).saturating_sub(64);
                if extra > 0 {
                    let unit = 1u128 << extra;
                    let rest = product & (unit - 1);
                    product -= rest;
                    let half = unit >> 1;
                    if rest > half || (rest == half && product & unit != 0) {
                        product += unit;
                    }
                }
                Some(
                    u32::try_from(-exp)
                        .ok()
                        .and_then(|shift| product.checked_shr(shift))
                        .unwrap_or(0),
                )
            }
        };
        match magnitude {
            Some(m) if !self.negative && m <= i64::MAX as u128 => m as i64,
            Some(m) if self.negative && m <= i64::MAX as u128 => -(m as i64),
            _ => i64::MIN,
        }
    }

    /// False for infinities.
    pub fn is_finite(&self) -> bool {
        self.kind != Kind::Inf
    }

    /// Rounds `n × 2^exp2` (plus a positive amount below its last bit if
    /// `sticky`) to 64 significant bits, half to even.
    fn round(negative: bool, n: &Big, exp2: i64, sticky: bool) -> LongDouble {
        if n.is_zero() {
            return LongDouble {
                negative,
                kind: Kind::Zero,
            };
        }
        let bits = n.bits();
        let (mut significand, mut exp) = if bits <= 64 {
            debug_assert!(!sticky, "sticky bits need a quotient longer than 64 bits");
            (n.shr_u64(0) << (64 - bits), exp2 - (64 - bits as i64))
        } else {
            let shift = bits - 64;
            let mut s = n.shr_u64(shift);
            let half = n.bit(shift - 1);
            let rest = sticky || n.any_below(shift - 1);
            if half && (rest || s & 1 == 1) {
                match s.checked_add(1) {
                    Some(v) => s = v,
                    None => return Self::finite(negative, 1 << 63, exp2 + shift as i64 + 1),
                }
            }
            (s, exp2 + shift as i64)
        };
        if significand == 0 {
            significand = 1 << 63;
            exp += 1;
        }
        Self::finite(negative, significand, exp)
    }

    fn finite(negative: bool, significand: u64, exp: i64) -> LongDouble {
        let top = exp + 63;
        let kind = if top > MAX_EXP {
            Kind::Inf
        } else if top < MIN_EXP {
            Kind::Zero // subnormals are not modelled
        } else {
            Kind::Finite { significand, exp }
        };
        LongDouble { negative, kind }
    }

    /// Redis's `string2ld`: `strtold` on the whole string, no leading space,
    /// no NaN, no overflow or underflow to zero.
    pub fn parse(text: &[u8]) -> Option<LongDouble> {
        if text.is_empty()
            || text.len() >= 5 * 1024
            || text[0].is_ascii_whitespace()
            || text[0] == 0x0b
        {
            return None;
        }
        let (negative, rest) = match text[0] {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        if rest.eq_ignore_ascii_case(b"inf") || rest.eq_ignore_ascii_case(b"infinity") {
            return Some(LongDouble {
                negative,
                kind: Kind::Inf,
            });
        }
        if rest.len() >= 2 && rest[0] == b'0' && (rest[1] == b'x' || rest[1] == b'X') {
            return Self::parse_hex(negative, &rest[2..]);
        }
        let mut digits = Big(vec![]);
        let mut n_digits = 0u64;
        let mut any_digit = false;
        let mut frac = 0i64;
        let mut i = 0;
        let mut seen_dot = false;
        while i < rest.len() {
            let c = rest[i];
            if c.is_ascii_digit() {
                any_digit = true;
                if !digits.is_zero() || c != b'0' {
                    digits.mul_small(10);
                    digits.add_small(u32::from(c - b'0'));
                    n_digits += 1;
                }
                if seen_dot {
                    frac += 1;
                }
            } else if c == b'.' && !seen_dot {
                seen_dot = true;
            } else {
                break;
            }
            i += 1;
        }
        if !any_digit {
            return None;
        }
        let mut exp10 = 0i64;
        if i < rest.len() {
            if rest[i] != b'e' && rest[i] != b'E' {
                return None;
            }
            i += 1;
            let (eneg, erest) = match rest.get(i) {
                Some(b'-') => (true, &rest[i + 1..]),
                Some(b'+') => (false, &rest[i + 1..]),
                _ => (false, &rest[i..]),
            };
            if erest.is_empty() || !erest.iter().all(u8::is_ascii_digit) {
                return None;
            }
            for &c in erest {
                exp10 = (exp10 * 10 + i64::from(c - b'0')).min(1_000_000);
            }
            if eneg {
                exp10 = -exp10;
            }
        }
        if digits.is_zero() {
            return Some(LongDouble {
                negative,
                kind: Kind::Zero,
            });
        }
        let e = exp10 - frac;
        let magnitude = e + n_digits as i64; // value < 10^magnitude
        if magnitude > 4940 {
            return None; // overflow: ERANGE with HUGE_VAL
        }
        if magnitude < -4960 {
            return None; // underflow to zero: ERANGE
        }
        let value = if e >= 0 {
            let mut n = digits;
            n.mul_pow(10, e as u64);
            Self::round(negative, &n, 0, false)
        } else {
            let mut p = Big::from_u64(1);
            p.mul_pow(10, (-e) as u64);
            let k = 66 + p.bits() as i64 - digits.bits() as i64;
            let (a, b) = if k >= 0 {
                (digits.shl(k as u64), p)
            } else {
                (digits, p.shl((-k) as u64))
            };
            let (q, r) = a.divmod(&b);
            let top = q.bits() as i64 - 1 - k;
            return Self::accept(Self::round(negative, &q, -k, !r.is_zero()), top);
        };
        Self::accept(value, MIN_EXP)
    }

    /// `strtold`'s hexadecimal form after the sign and `0x`: hex digits with
    /// an optional point (at least one digit), then an optional binary
    /// exponent `p[+-]digits`; Redis wants the whole string consumed.
    fn parse_hex(negative: bool, text: &[u8]) -> Option<LongDouble> {
        let mut mantissa = Big(vec![]);
        let (mut any_digit, mut seen_dot, mut frac_digits) = (false, false, 0i64);
        let mut i = 0;
        while i < text.len() {
            let c = text[i];
            if let Some(d) = char::from(c).to_digit(16) {
                any_digit = true;
                if !mantissa.is_zero() || d != 0 {
                    mantissa.mul_small(16);
                    mantissa.add_small(d);
                    if seen_dot {
                        frac_digits += 1;
                    }
                } else if seen_dot {
                    frac_digits += 1;
                }
            } else if c == b'.' && !seen_dot {
                seen_dot = true;
            } else {
                break;
            }
            i += 1;
        }
        if !any_digit {
            return None;
        }
        let mut exp2 = 0i64;
        if i < text.len() {
            if text[i] != b'p' && text[i] != b'P' {
                return None;
            }
            let (eneg, digits) = match text.get(i + 1) {
                Some(b'-') => (true, &text[i + 2..]),
                Some(b'+') => (false, &text[i + 2..]),
                _ => (false, &text[i + 1..]),
            };
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            for &c in digits {
                exp2 = (exp2 * 10 + i64::from(c - b'0')).min(1_000_000);
            }
            if eneg {
                exp2 = -exp2;
            }
        }
        if mantissa.is_zero() {
            return Some(LongDouble {
                negative,
                kind: Kind::Zero,
            });
        }
        let exp2 = exp2 - 4 * frac_digits;
        let top = mantissa.bits() as i64 - 1 + exp2;
        if top > MAX_EXP + 1 {
            return None;
        }
        Self::accept(Self::round(negative, &mantissa, exp2, false), top)
    }

    /// `string2ld`'s verdict on a parsed non-zero value whose leading bit
    /// has binary exponent `top`: overflow to infinity is refused; so is
    /// underflow to zero, but a subnormal (`strtold` returns it with
    /// `ERANGE`, and Redis accepts it) is kept — as a signed zero, since
    /// subnormals are not modelled (it prints as `0` either way).
    fn accept(value: LongDouble, top: i64) -> Option<LongDouble> {
        match value.kind {
            Kind::Inf => None,
            Kind::Zero if top >= MIN_SUBNORMAL_EXP => Some(value),
            Kind::Zero => None,
            Kind::Finite { .. } => Some(value),
        }
    }

    /// `self + other`, rounded to nearest even.
    pub fn add(&self, other: &LongDouble) -> LongDouble {
        match (self.kind, other.kind) {
            (Kind::Inf, Kind::Inf) if self.negative != other.negative => LongDouble {
                negative: false,
                kind: Kind::Inf, // NaN: reported as non-finite all the same
            },
            (Kind::Inf, _) => *self,
            (_, Kind::Inf) => *other,
            (Kind::Zero, Kind::Zero) => LongDouble {
                negative: self.negative && other.negative,
                kind: Kind::Zero,
            },
            (Kind::Zero, _) => *other,
            (_, Kind::Zero) => *self,
            (
                Kind::Finite {
                    significand: ma,
                    exp: ea,
                },
                Kind::Finite {
                    significand: mb,
                    exp: eb,
                },
            ) => {
                let emin = ea.min(eb);
                let a = Big::from_u64(ma).shl((ea - emin) as u64);
                let b = Big::from_u64(mb).shl((eb - emin) as u64);
                if self.negative == other.negative {
                    Self::round(self.negative, &a.add(&b), emin, false)
                } else {
                    match a.cmp(&b) {
                        Ordering::Equal => LongDouble::ZERO,
                        Ordering::Greater => Self::round(self.negative, &a.sub(&b), emin, false),
                        Ordering::Less => Self::round(other.negative, &b.sub(&a), emin, false),
                    }
                }
            }
        }
    }

    /// `printf("%.17Lf")` without trailing zeros (and `-0` as `0`): Redis's
    /// `LD_STR_HUMAN`. Infinities print as `inf` / `-inf`.
    pub fn to_human(&self) -> String {
        let (significand, exp) = match self.kind {
            Kind::Inf => {
                return if self.negative {
                    "-inf".into()
                } else {
                    "inf".into()
                }
            }
            Kind::Zero => return "0".into(),
            Kind::Finite { significand, exp } => (significand, exp),
        };
        let (int_part, mut frac) = if exp >= 0 {
            (
                Big::from_u64(significand).shl(exp as u64).to_decimal(),
                String::new(),
            )
        } else {
            let f = (-exp) as usize;
            let mut x = Big::from_u64(significand);
            x.mul_pow(5, f as u64);
            let digits = x.to_decimal();
            if digits.len() > f {
                (
                    digits[..digits.len() - f].to_string(),
                    digits[digits.len() - f..].to_string(),
                )
            } else {
                (
                    "0".to_string(),
                    format!("{}{}", "0".repeat(f - digits.len()), digits),
                )
            }
        };
        let mut int_digits: Vec<u8> = int_part.into_bytes();
        if frac.len() > 17 {
            let rest = frac.split_off(17);
            let first = rest.as_bytes()[0];
            let tail_nonzero = rest.bytes().skip(1).any(|c| c != b'0');
            let last_odd = frac.as_bytes().last().map_or_else(
                || int_digits.last().is_some_and(|d| (d - b'0') % 2 == 1),
                |d| (d - b'0') % 2 == 1,
            );
            if first > b'5' || (first == b'5' && (tail_nonzero || last_odd)) {
                let mut all: Vec<u8> = int_digits.iter().copied().chain(frac.bytes()).collect();
                let mut i = all.len();
                loop {
                    if i == 0 {
                        all.insert(0, b'1');
                        break;
                    }
                    i -= 1;
                    if all[i] == b'9' {
                        all[i] = b'0';
                    } else {
                        all[i] += 1;
                        break;
                    }
                }
                let split = all.len() - 17;
                frac = String::from_utf8(all[split..].to_vec()).expect("ascii digits");
                int_digits = all[..split].to_vec();
            }
        }
        let frac = frac.trim_end_matches('0');
        let mut out = String::new();
        let int_text = String::from_utf8(int_digits).expect("ascii digits");
        if self.negative && !(int_text == "0" && frac.is_empty()) {
            out.push('-');
        }
        out.push_str(&int_text);
        if !frac.is_empty() {
            out.push('.');
            out.push_str(frac);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::LongDouble;

    fn incr(a: &str, b: &str) -> String {
        let a = LongDouble::parse(a.as_bytes()).expect("valid a");
        let b = LongDouble::parse(b.as_bytes()).expect("valid b");
        a.add(&b).to_human()
    }

    #[test]
    fn matches_redis_incrbyfloat_examples() {
        // From Redis's documentation and test suite.
        assert_eq!(incr("10.50", "0.1"), "10.6");
        assert_eq!(incr("5.0e3", "2.0e2"), "5200");
        assert_eq!(incr("0.1", "0.2"), "0.3");
        assert_eq!(incr("10", "-5"), "5");
        assert_eq!(incr("1", "-1"), "0");
        assert_eq!(incr("-1.5", "0.5"), "-1");
        assert_eq!(incr("0", "3.0e3"), "3000");
        assert_eq!(incr("1e15", "0.123"), "1000000000000000.12298583984375");
        assert_eq!(incr("17179869184", "1.5"), "17179869185.5");
        assert_eq!(incr("0", "0.0001"), "0.0001");
    }

    #[test]
    fn rejects_what_string2ld_rejects() {
        for bad in [
            "", " 1", "1 ", "abc", "1e", "nan", "1.2.3", "--1", "1e99999",
        ] {
            assert!(LongDouble::parse(bad.as_bytes()).is_none(), "{bad}");
        }
        assert!(!LongDouble::parse(b"inf").expect("inf parses").is_finite());
        assert!(LongDouble::parse(b"+.5").is_some());
        assert!(LongDouble::parse(b"5.").is_some());
    }

    #[test]
    fn huge_sum_overflows_to_infinity() {
        let big = LongDouble::parse(b"1e4931").expect("in range");
        let sum = big
            .add(&big)
            .add(&big)
            .add(&big)
            .add(&big)
            .add(&big)
            .add(&big)
            .add(&big)
            .add(&big)
            .add(&big)
            .add(&big)
            .add(&big);
        assert!(!sum.is_finite());
    }
}
