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
/// already checked). `'a` is the arguments' lifetime: an operation may keep
/// slices of them instead of copies, since it lives only as long as the
/// check or the apply that parsed it.
pub(crate) trait Parse<'a>: Sized {
    /// The operation, or the error reply (a syntax or type-independent
    /// error: the same for any data).
    fn parse(args: &'a [Bytes]) -> Result<Self, Output>;
}

/// A write operation, run by apply.
pub(crate) trait Apply<'a>: Parse<'a> {
    /// Runs on the map; the output is the client's reply.
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output;
}

/// A read operation, run on the map after the read barrier.
pub(crate) trait Query<'a>: Parse<'a> {
    /// Runs on the map; the output is the client's reply.
    fn query(self, db: &Db, ctx: &Ctx) -> Output;
}

/// A write that can see on the map, before it runs, that it would change
/// nothing (`crate::cmd::CommandSpec::unchanged`).
pub(crate) trait Unchanged<'a>: Apply<'a> {
    /// The output [`Apply::apply`] would give now, if it would change
    /// nothing; `None` if it might (or cannot tell: [`Db::probe_key`]).
    fn unchanged(&self, db: &Db, ctx: &Ctx) -> Option<Output>;
}

/// An operation that borrows its arguments, named by its `'static` form:
/// `Op<'a>` is the operation parsed from `&'a [Bytes]`. A row's function
/// pointers must work for arguments of any lifetime, which a type with a
/// lifetime of its own cannot say; this names the operation for each.
pub(crate) trait Borrows {
    /// The operation parsed from arguments of lifetime `'a`.
    type Op<'a>: Parse<'a>;
}

/// An operation that owns what it keeps, named for [`Borrows`] as the
/// operation of any lifetime: the typed rows below are the borrowed ones'
/// functions over it.
struct Owned<T>(std::marker::PhantomData<T>);

impl<T: for<'a> Parse<'a>> Borrows for Owned<T> {
    type Op<'a> = T;
}

fn check<F: Borrows>(args: &[Bytes]) -> Result<(), Output> {
    F::Op::parse(args).map(drop)
}

fn run_write<F>(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output
where
    F: Borrows,
    for<'a> F::Op<'a>: Apply<'a>,
{
    match F::Op::parse(args) {
        Ok(op) => op.apply(db, ctx),
        Err(error) => error,
    }
}

fn run_read<T: for<'a> Query<'a>>(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    match T::parse(args) {
        Ok(op) => op.query(db, ctx),
        Err(error) => error,
    }
}

fn probe_unchanged<F>(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Option<Output>
where
    F: Borrows,
    for<'a> F::Op<'a>: Unchanged<'a>,
{
    F::Op::parse(args).ok()?.unchanged(db, ctx)
}

/// The check and run of a typed write.
pub(crate) const fn typed_write<T: for<'a> Apply<'a>>() -> (Check, WriteRun) {
    borrowed_write::<Owned<T>>()
}

/// The unchanged-write probe of a typed write.
pub(crate) const fn typed_unchanged<T: for<'a> Unchanged<'a>>() -> UnchangedRun {
    borrowed_unchanged::<Owned<T>>()
}

/// [`typed_write`] of an operation that borrows its arguments.
pub(crate) const fn borrowed_write<F>() -> (Check, WriteRun)
where
    F: Borrows,
    for<'a> F::Op<'a>: Apply<'a>,
{
    (check::<F>, run_write::<F>)
}

/// [`typed_unchanged`] of an operation that borrows its arguments.
pub(crate) const fn borrowed_unchanged<F>() -> UnchangedRun
where
    F: Borrows,
    for<'a> F::Op<'a>: Unchanged<'a>,
{
    probe_unchanged::<F>
}

/// The check and run of a typed read.
pub(crate) const fn typed_read<T: for<'a> Query<'a>>() -> (Check, ReadRun) {
    (check::<Owned<T>>, run_read::<T>)
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
