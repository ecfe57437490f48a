//! How a key-space command's definition (a row of `crate::cmd`) runs in
//! `kv`: a typed operation parsed from the arguments ([`Parse`]), then
//! applied to the map ([`Apply`]) or read from it ([`Query`]).
//!
//! The server calls the row's check (the parse, its result dropped) before
//! proposing; apply parses the same arguments again and runs the operation.
//! A parse is pure and cheap, so the log carries arguments, not a serialized
//! operation (see `crate::cmd`).

use bytes::Bytes;

use super::{Ctx, Db, Output};
use crate::cmd::{no_check, Check, ReadRun, UnchangedRun, WriteRun};

/// A typed operation built from a command's arguments (name at 0, arity
/// already checked).
pub(crate) trait Parse: Sized {
    /// The operation, or the error reply (a syntax or type-independent
    /// error: the same for any data).
    fn parse(args: &[Bytes]) -> Result<Self, Output>;
}

/// A write operation, run by apply.
pub(crate) trait Apply: Parse {
    /// Runs on the map; the output is the client's reply.
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output;
}

/// A read operation, run on the map after the read barrier.
pub(crate) trait Query: Parse {
    /// Runs on the map; the output is the client's reply.
    fn query(self, db: &Db, ctx: &Ctx) -> Output;
}

/// A write that can see on the map, before it runs, that it would change
/// nothing (`crate::cmd::CommandSpec::unchanged`).
pub(crate) trait Unchanged: Apply {
    /// The output [`Apply::apply`] would give now, if it would change
    /// nothing; `None` if it might (or cannot tell: [`Db::probe_key`]).
    fn unchanged(&self, db: &Db, ctx: &Ctx) -> Option<Output>;
}

fn check<T: Parse>(args: &[Bytes]) -> Result<(), Output> {
    T::parse(args).map(drop)
}

fn run_write<T: Apply>(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    match T::parse(args) {
        Ok(op) => op.apply(db, ctx),
        Err(error) => error,
    }
}

fn run_read<T: Query>(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    match T::parse(args) {
        Ok(op) => op.query(db, ctx),
        Err(error) => error,
    }
}

/// The check and run of a typed write.
pub(crate) const fn typed_write<T: Apply>() -> (Check, WriteRun) {
    (check::<T>, run_write::<T>)
}

fn probe_unchanged<T: Unchanged>(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Option<Output> {
    T::parse(args).ok()?.unchanged(db, ctx)
}

/// The unchanged-write probe of a typed write.
pub(crate) const fn typed_unchanged<T: Unchanged>() -> UnchangedRun {
    probe_unchanged::<T>
}

/// The check and run of a typed read.
pub(crate) const fn typed_read<T: Query>() -> (Check, ReadRun) {
    (check::<T>, run_read::<T>)
}

/// A write whose every argument list of the right arity is valid (DEL ...):
/// its run takes the arguments as they are.
pub(crate) const fn unchecked_write(run: WriteRun) -> (Check, WriteRun) {
    (no_check, run)
}

/// A read whose every argument list of the right arity is valid (GET ...).
pub(crate) const fn unchecked_read(run: ReadRun) -> (Check, ReadRun) {
    (no_check, run)
}

/// Running a row's check from a command line, for the groups' tests.
#[cfg(test)]
pub(crate) mod testing {
    use bytes::Bytes;

    use crate::cmd::Kind;
    use crate::kv::{Command, Db, Op, Output};

    fn args(line: &str) -> Vec<Bytes> {
        line.split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    /// What the row's check answers for `line` (space-separated, the right
    /// arity): `Err(text)` is the reply given before proposing.
    pub(crate) fn check(line: &str) -> Result<(), String> {
        let args = args(line);
        let (_, spec) = crate::cmd::lookup(&args[0]).expect("a known command");
        assert!(spec.arity_ok(args.len()), "{line}: wrong arity");
        let check = match spec.kind {
            Kind::Read { check, .. } | Kind::Write { check, .. } => check,
            Kind::Server(_) => panic!("{line}: not a key-space command"),
        };
        match check(&args) {
            Ok(()) => Ok(()),
            Err(Output::Error(text)) => Err(text),
            Err(other) => panic!("{line}: a check answers errors only, got {other:?}"),
        }
    }

    /// Asserts each `(line, Redis's error)`: the check refuses it with that
    /// text (`None`: the check lets it through to the data).
    pub(crate) fn assert_checks(cases: &[(&str, Option<&str>)]) {
        for (line, expected) in cases {
            let expected = match expected {
                Some(text) => Err(text.to_string()),
                None => Ok(()),
            };
            assert_eq!(check(line), expected, "{line}");
        }
    }

    /// Runs `line` as one log entry at `now_ms` in database `db`.
    pub(crate) fn exec(map: &mut Db, db: u8, now_ms: u64, line: &str) -> Output {
        map.apply(&Command {
            ts_ms: now_ms,
            op: Op::Exec {
                db,
                args: args(line),
            },
        })
    }
}
