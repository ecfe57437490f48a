//! The blocking commands (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN,
//! BZPOPMAX, BZMPOP) as the state machine sees them: their timeout argument
//! and their attempt. Waiting itself is the server's (`server::blocking`);
//! apply only ever runs an attempt, which never waits.

use bytes::Bytes;

use super::float::LongDouble;
use super::lists::{lmove, mpop, End, LMPop};
use super::table::{typed_write, Apply, Parse};
use super::zsets::{ZMPop, ZPop};
use super::{Ctx, Db, Output};
use crate::cmd::cat::*;
use crate::cmd::{write, CommandSpec, TimeoutAt, K12, NO_KEYS};

/// Redis 7.0's `getTimeoutFromObjectOrReply` for a timeout in seconds: the
/// timeout in milliseconds, 0 for "forever". Fractions of a millisecond are
/// truncated (so `0.0001` means forever, as in Redis), and a value whose
/// milliseconds do not fit (infinity, `1e30`) is "negative", as Redis
/// reports it on x86-64.
/// True for a blocking command's attempt that found nothing to pop.
pub fn found_nothing(output: &Output) -> bool {
    matches!(output, Output::NilArray | Output::Bulk(None))
}

pub(crate) fn parse_timeout(arg: &[u8]) -> Result<u64, Output> {
    let seconds = LongDouble::parse(arg)
        .ok_or_else(|| Output::err("ERR timeout is not a float or out of range"))?;
    let ms = seconds.times_1000_truncated();
    u64::try_from(ms).map_err(|_| Output::err("ERR timeout is negative"))
}

// ---- the blocking commands' attempts ---------------------------------------
//
// Each is the command as apply runs it: one non-blocking try that answers
// nil (a nil array, or a nil bulk for BLMOVE / BRPOPLPUSH) when no key holds
// anything, which is also what the command answers inside MULTI and at its
// timeout. The server's waiting is in `server::blocking`.

fn bulks(elements: Vec<Bytes>) -> Output {
    Output::Array(elements.into_iter().map(Output::bulk).collect())
}

/// `BLPOP key [key ...] timeout` (`LEFT`) and `BRPOP` (`!LEFT`).
pub(crate) struct BPop<const LEFT: bool> {
    keys: Vec<Bytes>,
}

impl<const LEFT: bool> Parse<'_> for BPop<LEFT> {
    fn parse(args: &[Bytes]) -> Result<Self, Output> {
        let (timeout, keys) = args[1..]
            .split_last()
            .ok_or_else(|| Output::err(super::errors::SYNTAX))?;
        parse_timeout(timeout)?;
        Ok(BPop {
            keys: keys.to_vec(),
        })
    }
}

impl<const LEFT: bool> Apply<'_> for BPop<LEFT> {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        let end = if LEFT { End::Left } else { End::Right };
        match mpop(db, ctx, &self.keys, end, 1) {
            Err(error) => error,
            Ok(None) => Output::NilArray,
            Ok(Some((key, mut elements))) => match elements.pop() {
                Some(element) => Output::Array(vec![Output::bulk(key), Output::bulk(element)]),
                None => Output::NilArray,
            },
        }
    }
}

/// `BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout` and
/// `BRPOPLPUSH source destination timeout` (`RIGHT LEFT`).
pub(crate) struct BLMove {
    source: Bytes,
    destination: Bytes,
    from: End,
    to: End,
}

impl Parse<'_> for BLMove {
    fn parse(args: &[Bytes]) -> Result<BLMove, Output> {
        let (from, to) = if args.len() == 6 {
            (End::parse(&args[3])?, End::parse(&args[4])?)
        } else {
            (End::Right, End::Left)
        };
        parse_timeout(&args[args.len() - 1])?;
        Ok(BLMove {
            source: args[1].clone(),
            destination: args[2].clone(),
            from,
            to,
        })
    }
}

impl Apply<'_> for BLMove {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        match lmove(db, ctx, &self.source, &self.destination, self.from, self.to) {
            Ok(element) => Output::Bulk(element),
            Err(error) => error,
        }
    }
}

/// `BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count]`.
pub(crate) struct BLMPop(LMPop);

impl Parse<'_> for BLMPop {
    fn parse(args: &[Bytes]) -> Result<BLMPop, Output> {
        // Redis checks numkeys, the end and COUNT before the timeout.
        let op = LMPop::parse_at(args, 2)?;
        parse_timeout(&args[1])?;
        Ok(BLMPop(op))
    }
}

impl Apply<'_> for BLMPop {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        let BLMPop(op) = self;
        match mpop(db, ctx, &op.keys, op.end, op.count) {
            Err(error) => error,
            Ok(None) => Output::NilArray,
            Ok(Some((key, elements))) => Output::Array(vec![Output::bulk(key), bulks(elements)]),
        }
    }
}

/// `BZPOPMIN key [key ...] timeout` (`!MAX`) and `BZPOPMAX`.
pub(crate) struct BZPop<const MAX: bool> {
    keys: Vec<Bytes>,
}

impl<const MAX: bool> Parse<'_> for BZPop<MAX> {
    fn parse(args: &[Bytes]) -> Result<Self, Output> {
        let (timeout, keys) = args[1..]
            .split_last()
            .ok_or_else(|| Output::err(super::errors::SYNTAX))?;
        parse_timeout(timeout)?;
        Ok(BZPop {
            keys: keys.to_vec(),
        })
    }
}

impl<const MAX: bool> Apply<'_> for BZPop<MAX> {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        for key in self.keys {
            match ZPop::one(key.clone(), MAX).run(db, ctx) {
                Err(error) => return error,
                Ok(None) => {}
                Ok(Some(Output::Array(mut pair))) => {
                    pair.insert(0, Output::bulk(key));
                    return Output::Array(pair);
                }
                Ok(Some(other)) => return other,
            }
        }
        Output::NilArray
    }
}

/// `BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count]`.
pub(crate) struct BZMPop(ZMPop);

impl Parse<'_> for BZMPop {
    fn parse(args: &[Bytes]) -> Result<BZMPop, Output> {
        // Redis checks numkeys, MIN|MAX and COUNT before the timeout.
        let op = ZMPop::parse_from(args, 2)?;
        parse_timeout(&args[1])?;
        Ok(BZMPop(op))
    }
}

impl Apply<'_> for BZMPop {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        match self.0.run(db, ctx) {
            Ok(Some(reply)) => reply,
            Ok(None) => Output::NilArray,
            Err(error) => error,
        }
    }
}

/// Every key but the last argument (the timeout).
const KEYS_BEFORE_TIMEOUT: (i64, i64, i64) = (1, -2, 1);

/// The blocking commands (see `crate::cmd::Blocking`).
pub(crate) static COMMANDS: &[CommandSpec] = &[
    write("blpop", -3, F_NONE, "@list", KEYS_BEFORE_TIMEOUT, typed_write::<BPop<true>>())
        .acl(cats(&[WRITE, LIST, SLOW, BLOCKING]), (KA_RW, KA_RW))
        .doc(
            "Removes and returns the first element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.",
            "2.0.0",
            "O(N) where N is the number of provided keys.",
        )
        .blocks(TimeoutAt::Last, false),
    write("brpop", -3, F_NONE, "@list", KEYS_BEFORE_TIMEOUT, typed_write::<BPop<false>>())
        .acl(cats(&[WRITE, LIST, SLOW, BLOCKING]), (KA_RW, KA_RW))
        .doc(
            "Removes and returns the last element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.",
            "2.0.0",
            "O(N) where N is the number of provided keys.",
        )
        .blocks(TimeoutAt::Last, false),
    write("blmove", 6, F_DENYOOM, "@list", K12, typed_write::<BLMove>())
        .acl(cats(&[WRITE, LIST, SLOW, BLOCKING]), (KA_RW, KA_RW))
        .doc(
            "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise. Deletes the list if the last element was moved.",
            "6.2.0",
            "O(1)",
        )
        .blocks(TimeoutAt::Last, true),
    write("brpoplpush", 4, F_DENYOOM, "@list", K12, typed_write::<BLMove>())
        .acl(cats(&[WRITE, LIST, SLOW, BLOCKING]), (KA_RW, KA_RW))
        .doc(
            "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise. Deletes the list if the last element was popped.",
            "2.2.0",
            "O(1)",
        )
        .blocks(TimeoutAt::Last, true),
    write("blmpop", -5, F_NONE, "@list", NO_KEYS, typed_write::<BLMPop>())
        .key_num(2)
        .acl(cats(&[WRITE, LIST, SLOW, BLOCKING]), (KA_RW, KA_RW))
        .doc(
            "Pops the first element from one of multiple lists. Blocks until an element is available otherwise. Deletes the list if the last element was popped.",
            "7.0.0",
            "O(N+M) where N is the number of provided keys and M is the number of elements returned.",
        )
        .blocks(TimeoutAt::Index(1), false),
    write("bzpopmin", -3, F_FAST, "@sortedset", KEYS_BEFORE_TIMEOUT, typed_write::<BZPop<false>>())
        .acl(cats(&[WRITE, SORTEDSET, FAST, BLOCKING]), (KA_RW, KA_RW))
        .doc(
            "Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.",
            "5.0.0",
            "O(log(N)) with N being the number of elements in the sorted set.",
        )
        .blocks(TimeoutAt::Last, false),
    write("bzpopmax", -3, F_FAST, "@sortedset", KEYS_BEFORE_TIMEOUT, typed_write::<BZPop<true>>())
        .acl(cats(&[WRITE, SORTEDSET, FAST, BLOCKING]), (KA_RW, KA_RW))
        .doc(
            "Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member available otherwise.  Deletes the sorted set if the last element was popped.",
            "5.0.0",
            "O(log(N)) with N being the number of elements in the sorted set.",
        )
        .blocks(TimeoutAt::Last, false),
    write("bzmpop", -5, F_NONE, "@sortedset", NO_KEYS, typed_write::<BZMPop>())
        .key_num(2)
        .acl(cats(&[WRITE, SORTEDSET, SLOW, BLOCKING]), (KA_RW, KA_RW))
        .doc(
            "Removes and returns a member by score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.",
            "7.0.0",
            "O(K) + O(M*log(N)) where K is the number of provided keys, N being the number of elements in the sorted set, and M being the number of elements popped.",
        )
        .blocks(TimeoutAt::Index(1), false),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// BLMPOP and BZMPOP check numkeys, the end and COUNT before the
    /// timeout; BLMOVE its ends (redis-server 7.0.15's replies).
    #[test]
    fn timeout_is_checked_after_the_other_arguments() {
        crate::kv::table::testing::assert_checks(&[
            ("BLMPOP -1 1 l LEFT", Some("ERR timeout is negative")),
            ("BLMPOP -1 1 l UP", Some("ERR syntax error")),
            (
                "BLMPOP x 0 l LEFT",
                Some("ERR numkeys should be greater than 0"),
            ),
            (
                "BLMPOP -1 1 l LEFT COUNT 0",
                Some("ERR count should be greater than 0"),
            ),
            ("BLMOVE a b UP LEFT -1", Some("ERR syntax error")),
            ("BLMOVE a b LEFT LEFT -1", Some("ERR timeout is negative")),
            ("BZMPOP -1 2 z0 z0 up COUNT 5", Some("ERR syntax error")),
            (
                "BZMPOP -1 1 z MIN COUNT x",
                Some("ERR count should be greater than 0"),
            ),
        ]);
    }

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
