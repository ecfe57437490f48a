//! What blocking commands (BLPOP, BLMOVE, BZPOPMIN ...) share in the state
//! machine: their timeout argument. Waiting itself is the server's
//! (`server::blocking`); apply only ever runs a blocking command's attempt,
//! which never waits.

use super::float::LongDouble;
use super::Output;

/// Redis 7.0's `getTimeoutFromObjectOrReply` for a timeout in seconds: the
/// timeout in milliseconds, 0 for "forever". Fractions of a millisecond are
/// truncated (so `0.0001` means forever, as in Redis), and a value whose
/// milliseconds do not fit (infinity, `1e30`) is "negative", as Redis
/// reports it on x86-64.
pub(crate) fn parse_timeout(arg: &[u8]) -> Result<u64, Output> {
    let seconds = LongDouble::parse(arg)
        .ok_or_else(|| Output::err("ERR timeout is not a float or out of range"))?;
    let ms = seconds.times_1000_truncated();
    u64::try_from(ms).map_err(|_| Output::err("ERR timeout is negative"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each case as Redis 7.0.15 answers `BLPOP nosuchkey <timeout>`.
    #[test]
    fn timeouts_parse_as_redis_does() {
        let not_float = Err(Output::err("ERR timeout is not a float or out of range"));
        let negative = Err(Output::err("ERR timeout is negative"));
        for (arg, want) in [
            ("1", Ok(1000)),
            ("1.5", Ok(1500)),
            ("0", Ok(0)),
            ("-0", Ok(0)),
            ("0.0001", Ok(0)),
            ("-0.0001", Ok(0)),
            ("0.01", Ok(10)),
            ("0x10", Ok(16_000)),
            ("abc", not_float.clone()),
            ("nan", not_float.clone()),
            (" 1", not_float.clone()),
            ("", not_float.clone()),
            ("-1", negative.clone()),
            ("1e30", negative.clone()),
            ("inf", negative.clone()),
            ("1e16", negative.clone()),
            ("9223372036854776", negative.clone()),
        ] {
            assert_eq!(parse_timeout(arg.as_bytes()), want, "{arg}");
        }
    }
}
