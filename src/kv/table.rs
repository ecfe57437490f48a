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
use crate::cmd::{no_check, Check, ReadRun, WriteRun};

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
