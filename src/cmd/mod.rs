//! The command definitions: every command dkv serves is one [`CommandSpec`],
//! used by the server (lookup, arity, ACL, `COMMAND INFO/DOCS/COUNT/LIST/
//! GETKEYS`, routing), by the log (only arguments the command's own check
//! accepts are proposed) and by apply (the same row runs the command).
//!
//! A row is built once, next to the code that runs the command: key-space
//! commands in their `kv` module (`kv::strings::COMMANDS` ...), connection
//! and admin commands in `server::commands`. [`COMMANDS`] is every group's
//! rows in one list, in a fixed order; a command's index there is stable
//! for the life of the process (metrics use it).
//!
//! Invariants:
//! - Names are unique, lower case, at most [`MAX_NAME_BYTES`] bytes (a test
//!   checks every row).
//! - A [`Kind::Read`] or [`Kind::Write`] row's `check` accepts exactly the
//!   argument lists its `run` can execute without a syntax error: what is
//!   answered before proposing is what apply would have answered, and only
//!   accepted arguments reach the log. Errors that depend on the data
//!   (WRONGTYPE, "value is not an integer" for the stored value) are apply's.
//! - `run` is deterministic (see `kv`): it reads time and randomness only
//!   from its [`Ctx`].
//!
//! The log carries an accepted command as its argument list (as Redis's own
//! replication stream does), and apply parses it again with the same parser:
//! one format for every command, compact, and stable across versions.

pub mod cat;
pub mod slot;

use std::collections::HashMap;
use std::sync::LazyLock;

use bytes::Bytes;

use crate::acl::{Categories, KeyAccess};
use crate::kv::{Ctx, Db, Output};
use crate::server::command::Handler;

/// Longest command name (`COMMAND` names are far shorter; longer input is
/// simply unknown).
pub const MAX_NAME_BYTES: usize = 32;

/// Redis command flags (shown by `COMMAND`), as bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flags(u32);

impl Flags {
    /// Modifies the key space (goes through the Raft log).
    pub const WRITE: Flags = Flags(1);
    /// Reads the key space (linearizable read).
    pub const READONLY: Flags = Flags(1 << 1);
    /// Administrative.
    pub const ADMIN: Flags = Flags(1 << 2);
    /// Connection state only (HELLO, AUTH, SELECT, CLIENT ...).
    pub const CONNECTION: Flags = Flags(1 << 3);
    /// O(1) or O(log n).
    pub const FAST: Flags = Flags(1 << 4);
    /// Served while the node is loading.
    pub const LOADING: Flags = Flags(1 << 5);
    /// Runs at once inside MULTI instead of being queued (EXEC, DISCARD,
    /// MULTI, WATCH, QUIT, RESET).
    pub const NO_QUEUE: Flags = Flags(1 << 6);
    /// Refused with `-OOM` over `maxmemory` (Redis's `denyoom`).
    pub const DENYOOM: Flags = Flags(1 << 7);
    /// May block the client (BLPOP ...).
    pub const BLOCKING: Flags = Flags(1 << 8);
    /// Key positions depend on the arguments (a `numkeys` argument).
    pub const MOVABLE_KEYS: Flags = Flags(1 << 9);
    /// The reply depends on randomness (SPOP, RANDOMKEY ...).
    pub const NONDETERMINISTIC: Flags = Flags(1 << 10);
    /// A Pub/Sub command (Redis's `pubsub` flag).
    pub const PUBSUB: Flags = Flags(1 << 11);
    /// Refused inside a script (Redis's `noscript`; `redis.call` checks
    /// its own list, which also names commands dkv lacks).
    pub const NOSCRIPT: Flags = Flags(1 << 12);
    /// Redis runs it on a replica with stale data (`stale`; shown only).
    pub const STALE: Flags = Flags(1 << 13);
    /// Not shown to MONITOR clients as Redis's own (`skip_monitor`).
    pub const SKIP_MONITOR: Flags = Flags(1 << 14);
    /// Not in the slow log as Redis's own (`skip_slowlog`).
    pub const SKIP_SLOWLOG: Flags = Flags(1 << 15);
    /// May have no key though it has key specs (`no_mandatory_keys`).
    pub const NO_MANDATORY_KEYS: Flags = Flags(1 << 16);
    /// Served while a script runs past `busy-reply-threshold` (`allow_busy`);
    /// everything else gets `BUSY`.
    pub const ALLOW_BUSY: Flags = Flags(1 << 17);
    /// `WRITE` routes the command through the log but Redis does not show
    /// it (EVAL, EVALSHA: the script decides whether the call writes).
    pub const WRITE_NOT_SHOWN: Flags = Flags(1 << 18);
    /// `READONLY` is kept but not shown: a container whose subcommands read
    /// (XINFO: Redis shows no flags on the container, `readonly` on each
    /// subcommand).
    pub const READONLY_NOT_SHOWN: Flags = Flags(1 << 19);
    /// No flag.
    pub const NONE: Flags = Flags(0);

    /// Both sets of flags.
    pub const fn or(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    /// True if every bit of `other` is set.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The Redis flag names, in Redis's order (`COMMAND` output).
    pub fn redis_names(self) -> impl Iterator<Item = &'static str> {
        [
            (Flags::WRITE, "write"),
            (Flags::READONLY, "readonly"),
            (Flags::DENYOOM, "denyoom"),
            (Flags::ADMIN, "admin"),
            (Flags::PUBSUB, "pubsub"),
            (Flags::NOSCRIPT, "noscript"),
            (Flags::NO_QUEUE, "no_multi"),
            (Flags::BLOCKING, "blocking"),
            (Flags::LOADING, "loading"),
            (Flags::STALE, "stale"),
            (Flags::SKIP_MONITOR, "skip_monitor"),
            (Flags::SKIP_SLOWLOG, "skip_slowlog"),
            (Flags::FAST, "fast"),
            (Flags::NO_MANDATORY_KEYS, "no_mandatory_keys"),
            (Flags::MOVABLE_KEYS, "movablekeys"),
            (Flags::ALLOW_BUSY, "allow_busy"),
        ]
        .into_iter()
        .filter(move |(flag, name)| {
            // NO_QUEUE is dkv's "runs at once inside MULTI"; Redis shows
            // `no_multi` only for commands refused inside MULTI.
            *name != "no_multi"
                && !(*name == "write" && self.contains(Flags::WRITE_NOT_SHOWN))
                && !(*name == "readonly" && self.contains(Flags::READONLY_NOT_SHOWN))
                && self.contains(*flag)
        })
        .map(|(_, name)| name)
    }
}

/// Checks a key-space command's arguments (arity already checked) without
/// the data: `Err` is the reply, and nothing is proposed.
pub(crate) type Check = fn(&[Bytes]) -> Result<(), Output>;
/// Runs a read on the map.
pub(crate) type ReadRun = fn(&Db, &Ctx, &[Bytes]) -> Output;
/// Runs a write on the map (apply).
pub(crate) type WriteRun = fn(&mut Db, &Ctx, &[Bytes]) -> Output;
/// Looks at the map before a write (arguments checked) and returns the
/// reply its run would give when running it now would change nothing: no
/// value, TTL or key created, changed or deleted, no event. `None` when it
/// may change something, or when the probe cannot tell (an expired key
/// that apply would delete). See [`CommandSpec::unchanged`].
pub(crate) type UnchangedRun = fn(&Db, &Ctx, &[Bytes]) -> Option<Output>;

/// Where a command runs.
#[derive(Clone, Copy)]
pub enum Kind {
    /// On the connection (connection state, introspection, admin): its
    /// handler decides what to do.
    Server(Handler),
    /// A key-space read, run on the local map after the read barrier.
    #[allow(private_interfaces)]
    Read {
        /// Syntax check before running.
        check: Check,
        /// The read.
        run: ReadRun,
    },
    /// A key-space write: checked, proposed to the log, run by apply.
    #[allow(private_interfaces)]
    Write {
        /// Syntax check before proposing.
        check: Check,
        /// The write, as apply runs it.
        run: WriteRun,
    },
}

/// How to find a command's keys beyond the fixed range: a `numkeys`
/// argument at `index`, followed by that many keys (Redis's "keynum" key
/// spec: ZUNIONSTORE, LMPOP, SINTERCARD, EVAL ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyNum {
    /// Position of the `numkeys` argument.
    pub index: usize,
}

/// A command's own key finder: the key positions in `args` (name at 0).
pub type KeyFinder = fn(&[Bytes]) -> Vec<usize>;

/// Where a blocking command's timeout argument is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutAt {
    /// The last argument (BLPOP, BLMOVE, BZPOPMIN ...).
    Last,
    /// This position (BLMPOP, BZMPOP: right after the name).
    Index(usize),
    /// After a `BLOCK` option, in milliseconds (XREAD, XREADGROUP): the
    /// command blocks only when the option is given.
    BlockOption,
}

/// How a blocking command waits. Outside MULTI it is proposed as itself (an
/// attempt: apply pops if it can, else answers nil); while it gets nil it
/// waits for a write to its keys and attempts again, until its timeout.
/// Inside MULTI the same attempt is all it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocking {
    /// The timeout argument (seconds, fractional; 0 waits forever).
    pub timeout_at: TimeoutAt,
    /// Only the first key can unblock it (BLMOVE's source, not its
    /// destination); otherwise every key.
    pub first_key_only: bool,
}

impl Blocking {
    /// True if `args` make the command wait: always, but for commands
    /// with a `BLOCK` option only when it is given.
    pub fn applies(&self, args: &[Bytes]) -> bool {
        match self.timeout_at {
            TimeoutAt::BlockOption => block_option_at(args).is_some(),
            _ => true,
        }
    }
}

/// The position of the milliseconds after `BLOCK` (before `STREAMS`).
pub fn block_option_at(args: &[Bytes]) -> Option<usize> {
    let streams = args
        .iter()
        .position(|a| a.eq_ignore_ascii_case(b"streams"))
        .unwrap_or(args.len());
    args[..streams]
        .iter()
        .position(|a| a.eq_ignore_ascii_case(b"block"))
        .map(|at| at + 1)
        .filter(|&at| at < streams)
}

/// A subcommand of a container command (`CLIENT SETNAME`).
pub struct SubcommandSpec {
    /// Lower-case name.
    pub name: &'static str,
    /// Full name as Redis shows it: `client|setname`.
    pub full_name: &'static str,
    /// Arity counted from the container's name.
    pub arity: i32,
    /// The handler (gets all arguments, container name included).
    pub handler: Handler,
    /// Redis 7's ACL categories of the subcommand.
    pub acl_categories: Categories,
    /// Flags `COMMAND INFO` shows for it (`None`: the container's).
    pub flags: Option<Flags>,
    /// Fixed key positions `(first, last, step)`, counted from the
    /// container's name (`OBJECT ENCODING key`: `(2, 2, 1)`); [`NO_KEYS`]
    /// for none. The container's key access applies to them.
    pub keys: (i64, i64, i64),
    /// One-line summary (`COMMAND DOCS`; empty: none written yet).
    pub summary: &'static str,
    /// The Redis version that introduced it (`COMMAND DOCS`).
    pub since: &'static str,
    /// Time complexity (`COMMAND DOCS`).
    pub complexity: &'static str,
}

impl SubcommandSpec {
    /// A subcommand with the container's flags, no keys and no docs yet.
    pub const fn new(
        name: &'static str,
        full_name: &'static str,
        arity: i32,
        handler: Handler,
        acl_categories: Categories,
    ) -> SubcommandSpec {
        SubcommandSpec {
            name,
            full_name,
            arity,
            handler,
            acl_categories,
            flags: None,
            keys: NO_KEYS,
            summary: "",
            since: "",
            complexity: "",
        }
    }

    /// The row with flags of its own (`COMMAND INFO`).
    pub const fn with_flags(self, flags: Flags) -> SubcommandSpec {
        SubcommandSpec {
            flags: Some(flags),
            ..self
        }
    }

    /// The row with its `COMMAND DOCS` summary, first version and complexity.
    pub const fn doc(
        self,
        summary: &'static str,
        since: &'static str,
        complexity: &'static str,
    ) -> SubcommandSpec {
        SubcommandSpec {
            summary,
            since,
            complexity,
            ..self
        }
    }

    /// True if `argc` arguments (the container's name included) satisfy the
    /// arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        arity_ok(self.arity, argc)
    }
}

/// A command or one of its subcommands, as `COMMAND INFO` and `COMMAND DOCS`
/// name them: `get`, `config|get`.
#[derive(Clone, Copy)]
pub enum Named {
    /// A command.
    Command(&'static CommandSpec),
    /// A container and one of its subcommands.
    Sub(&'static CommandSpec, &'static SubcommandSpec),
}

/// The command or subcommand `name` names (case-insensitive): `name` alone,
/// or `container|subcommand`. None for an unknown name, a subcommand of a
/// command without subcommands, or more than one `|` (as Redis's
/// `lookupCommandBySds`).
pub fn lookup_full_name(name: &[u8]) -> Option<Named> {
    let mut parts = name.split(|&b| b == b'|');
    let (_, spec) = lookup(parts.next()?)?;
    let Some(sub) = parts.next() else {
        return Some(Named::Command(spec));
    };
    if parts.next().is_some() {
        return None;
    }
    spec.subcommands
        .iter()
        .find(|row| row.name.as_bytes().eq_ignore_ascii_case(sub))
        .map(|row| Named::Sub(spec, row))
}

/// One command.
pub struct CommandSpec {
    /// Lower-case name.
    pub name: &'static str,
    /// Redis arity: `n` exactly, `-n` at least n arguments (name included).
    pub arity: i32,
    /// Flags.
    pub flags: Flags,
    /// ACL group shown by `COMMAND` (`@string`, `@keyspace` ...).
    pub group: &'static str,
    /// Position of the first key (0: none).
    pub first_key: i64,
    /// Position of the last key (-1: the last argument, -2 the one before).
    pub last_key: i64,
    /// Step between keys.
    pub key_step: i64,
    /// Keys counted by a `numkeys` argument, if any.
    pub key_num: Option<KeyNum>,
    /// Finds the keys itself when neither the fixed range nor a `numkeys`
    /// argument says where they are (SORT's `STORE` destination: Redis's
    /// `getkeys_proc`); replaces both when set.
    pub key_finder: Option<KeyFinder>,
    /// How the command blocks, for blocking commands (BLPOP ...).
    pub blocking: Option<Blocking>,
    /// Where it runs.
    pub kind: Kind,
    /// Subcommands (empty for plain commands).
    pub subcommands: &'static [SubcommandSpec],
    /// One-line summary (`COMMAND DOCS`).
    pub summary: &'static str,
    /// The Redis version that introduced it (`COMMAND DOCS`).
    pub since: &'static str,
    /// Time complexity (`COMMAND DOCS`).
    pub complexity: &'static str,
    /// Redis 7's ACL categories of the command (`COMMAND INFO`, `+@cat`).
    pub acl_categories: Categories,
    /// For some writes: the probe that tells, from the map, that running
    /// the write now would change nothing, and its reply. Such a write is
    /// answered after a read barrier instead of a log entry (Redis neither
    /// propagates nor fsyncs a write that leaves the data as it was:
    /// SADD of present members, SET NX of an existing key).
    #[allow(private_interfaces)]
    pub unchanged: Option<UnchangedRun>,
    /// What the command does to its first key (ACL `%R~` / `%W~` checks).
    pub first_key_access: KeyAccess,
    /// What it does to its other keys.
    pub other_key_access: KeyAccess,
}

/// Fixed key positions `(first, last, step)`: none.
pub const NO_KEYS: (i64, i64, i64) = (0, 0, 0);
/// The first argument.
pub const K1: (i64, i64, i64) = (1, 1, 1);
/// Every argument.
pub const KN: (i64, i64, i64) = (1, -1, 1);
/// The first two arguments.
pub const K12: (i64, i64, i64) = (1, 2, 1);
/// Every other argument from the first (key value pairs).
pub const KV: (i64, i64, i64) = (1, -1, 2);

const fn row(
    name: &'static str,
    arity: i32,
    flags: Flags,
    group: &'static str,
    keys: (i64, i64, i64),
    kind: Kind,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        group,
        first_key: keys.0,
        last_key: keys.1,
        key_step: keys.2,
        key_num: None,
        key_finder: None,
        blocking: None,
        kind,
        subcommands: &[],
        summary: "",
        since: "",
        complexity: "",
        acl_categories: Categories::of(&[]),
        unchanged: None,
        first_key_access: KeyAccess::NONE,
        other_key_access: KeyAccess::NONE,
    }
}

/// A command run on the connection by `handler`.
pub const fn server(
    name: &'static str,
    arity: i32,
    flags: Flags,
    group: &'static str,
    keys: (i64, i64, i64),
    handler: Handler,
) -> CommandSpec {
    row(name, arity, flags, group, keys, Kind::Server(handler))
}

/// A key-space read (`READONLY` is added to `flags`).
pub(crate) const fn read(
    name: &'static str,
    arity: i32,
    flags: Flags,
    group: &'static str,
    keys: (i64, i64, i64),
    (check, run): (Check, ReadRun),
) -> CommandSpec {
    row(
        name,
        arity,
        flags.or(Flags::READONLY),
        group,
        keys,
        Kind::Read { check, run },
    )
}

/// A key-space write (`WRITE` is added to `flags`).
pub(crate) const fn write(
    name: &'static str,
    arity: i32,
    flags: Flags,
    group: &'static str,
    keys: (i64, i64, i64),
    (check, run): (Check, WriteRun),
) -> CommandSpec {
    row(
        name,
        arity,
        flags.or(Flags::WRITE),
        group,
        keys,
        Kind::Write { check, run },
    )
}

impl CommandSpec {
    /// The row with its ACL categories and key access (first key, others).
    pub const fn acl(self, categories: Categories, keys: (KeyAccess, KeyAccess)) -> CommandSpec {
        CommandSpec {
            acl_categories: categories,
            first_key_access: keys.0,
            other_key_access: keys.1,
            ..self
        }
    }

    /// The row with its `COMMAND DOCS` summary, first version and complexity.
    pub const fn doc(
        self,
        summary: &'static str,
        since: &'static str,
        complexity: &'static str,
    ) -> CommandSpec {
        CommandSpec {
            summary,
            since,
            complexity,
            ..self
        }
    }

    /// The row with keys counted by the `numkeys` argument at `index`
    /// (`movablekeys`).
    pub const fn key_num(self, index: usize) -> CommandSpec {
        CommandSpec {
            key_num: Some(KeyNum { index }),
            flags: self.flags.or(Flags::MOVABLE_KEYS),
            ..self
        }
    }

    /// The row with keys found by `finder` from the arguments
    /// (`movablekeys`): SORT's `STORE` destination.
    pub const fn keys_by(self, finder: KeyFinder) -> CommandSpec {
        CommandSpec {
            key_finder: Some(finder),
            flags: self.flags.or(Flags::MOVABLE_KEYS),
            ..self
        }
    }

    /// The row of a blocking command (`blocking` flag, `@blocking`).
    pub const fn blocks(self, timeout_at: TimeoutAt, first_key_only: bool) -> CommandSpec {
        CommandSpec {
            blocking: Some(Blocking {
                timeout_at,
                first_key_only,
            }),
            flags: self.flags.or(Flags::BLOCKING),
            ..self
        }
    }

    /// The write's row with the probe that answers it without a log entry
    /// when it would change nothing ([`CommandSpec::unchanged`]).
    pub(crate) const fn unchanged_by(self, probe: UnchangedRun) -> CommandSpec {
        CommandSpec {
            unchanged: Some(probe),
            ..self
        }
    }

    /// The row with subcommands.
    pub const fn subcommands(self, subcommands: &'static [SubcommandSpec]) -> CommandSpec {
        CommandSpec {
            subcommands,
            ..self
        }
    }

    /// True if `argc` arguments (name included) satisfy the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        arity_ok(self.arity, argc)
    }

    /// True for key-space commands (run by `kv`, reads or writes).
    pub fn is_data(&self) -> bool {
        !matches!(self.kind, Kind::Server(_))
    }

    /// True for key-space writes (proposed to the log).
    pub fn is_write(&self) -> bool {
        matches!(self.kind, Kind::Write { .. })
    }

    /// The positions of the keys in `args` (name at 0), in order, as
    /// `COMMAND GETKEYS` and the ACL key checks see them; `None` when a
    /// `numkeys` argument is not a count of the arguments that follow it
    /// (the command's own check refuses it too).
    pub fn key_positions(&self, args: &[Bytes]) -> Option<Vec<usize>> {
        if let Some(finder) = self.key_finder {
            return Some(finder(args));
        }
        let mut positions = Vec::new();
        let argc = args.len() as i64;
        let sub = args.get(1).and_then(|name| {
            self.subcommands
                .iter()
                .find(|s| name.eq_ignore_ascii_case(s.name.as_bytes()))
        });
        let (first_key, last_key, key_step) =
            sub.map_or((self.first_key, self.last_key, self.key_step), |s| s.keys);
        if first_key > 0 && argc > first_key {
            let last = if last_key < 0 {
                argc + last_key
            } else {
                last_key.min(argc - 1)
            };
            let step = key_step.max(1);
            let mut at = first_key;
            while at <= last {
                positions.push(at as usize);
                at += step;
            }
        }
        if let Some(KeyNum { index }) = self.key_num {
            let count = args
                .get(index)
                .and_then(|n| crate::kv::parse_i64(n))
                .and_then(|n| usize::try_from(n).ok())?;
            let first = index + 1;
            if first.saturating_add(count) > args.len() {
                return None;
            }
            positions.extend(first..first + count);
        }
        Some(positions)
    }
}

/// Redis arity: `n` exactly, `-n` at least `n` arguments.
pub fn arity_ok(arity: i32, argc: usize) -> bool {
    let n = arity.unsigned_abs() as usize;
    if arity >= 0 {
        argc == n
    } else {
        argc >= n
    }
}

/// A check for commands whose every argument list passing the arity check
/// is valid (GET, DEL ...).
pub(crate) fn no_check(_: &[Bytes]) -> Result<(), Output> {
    Ok(())
}

/// Every group's rows, in the order [`COMMANDS`] lists them.
static GROUPS: &[&[CommandSpec]] = &[
    crate::kv::strings::COMMANDS,
    crate::kv::keys::COMMANDS,
    crate::kv::expiry::COMMANDS,
    crate::kv::hashes::COMMANDS,
    crate::kv::sets::COMMANDS,
    crate::kv::lists::COMMANDS,
    crate::kv::zsets::COMMANDS,
    crate::kv::geo::COMMANDS,
    crate::kv::streams::COMMANDS,
    crate::kv::blocking::COMMANDS,
    crate::kv::objects::COMMANDS,
    crate::kv::sort::COMMANDS,
    crate::kv::scripting::COMMANDS,
    crate::kv::functions::COMMANDS,
    crate::kv::bitmaps::COMMANDS,
    crate::kv::bitfield::COMMANDS,
    crate::kv::lcs::COMMANDS,
    crate::kv::hll_cmds::COMMANDS,
    crate::server::commands::SERVER_COMMANDS,
    crate::server::commands::objects::OBJECT_COMMANDS,
    crate::server::pubsub::PUBSUB_COMMANDS,
    crate::server::commands::migrate::MIGRATE_COMMANDS,
];

/// Every command, in a fixed order (its index there identifies it).
pub static COMMANDS: LazyLock<Vec<&'static CommandSpec>> =
    LazyLock::new(|| GROUPS.iter().copied().flatten().collect());

/// FNV-1a, for [`INDEX`]: the table is fixed at start and holds only the
/// command names, so a keyed hash buys nothing there. A hostile name costs
/// at most a walk of the table's probe sequence, whose length the fixed
/// names bound. SipHash of a three-byte name cost about as much as the rest
/// of the lookup, twice per request.
#[derive(Clone, Copy)]
struct NameHasher(u64);

impl Default for NameHasher {
    fn default() -> NameHasher {
        NameHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut hash = self.0;
        for &byte in bytes {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = hash;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

static INDEX: LazyLock<HashMap<&'static [u8], usize, std::hash::BuildHasherDefault<NameHasher>>> =
    LazyLock::new(|| {
        COMMANDS
            .iter()
            .enumerate()
            .map(|(i, spec)| (spec.name.as_bytes(), i))
            .collect()
    });

/// The command named `name` (case-insensitive), with its index in
/// [`COMMANDS`].
pub fn lookup(name: &[u8]) -> Option<(usize, &'static CommandSpec)> {
    if name.len() > MAX_NAME_BYTES {
        return None;
    }
    let mut lower = [0u8; MAX_NAME_BYTES];
    let lower = &mut lower[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    let &index = INDEX.get(&*lower)?;
    Some((index, COMMANDS[index]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_lower_case_and_short() {
        let mut seen = std::collections::BTreeSet::new();
        for spec in COMMANDS.iter() {
            assert!(seen.insert(spec.name), "{} defined twice", spec.name);
            assert_eq!(spec.name, spec.name.to_ascii_lowercase());
            assert!(spec.name.len() <= MAX_NAME_BYTES, "{}", spec.name);
            assert_ne!(spec.arity, 0, "{}", spec.name);
        }
        assert_eq!(INDEX.len(), COMMANDS.len());
        // Every name is found under its own index, in either case.
        for (i, spec) in COMMANDS.iter().enumerate() {
            assert_eq!(lookup(spec.name.as_bytes()).map(|(at, _)| at), Some(i));
            let upper = spec.name.to_ascii_uppercase();
            assert_eq!(lookup(upper.as_bytes()).map(|(at, _)| at), Some(i));
        }
    }

    #[test]
    fn lookup_is_case_insensitive_and_refuses_long_names() {
        let (index, spec) = lookup(b"GeT").unwrap();
        assert_eq!(spec.name, "get");
        assert_eq!(COMMANDS[index].name, "get");
        assert!(lookup(b"nosuchcommand").is_none());
        assert!(lookup(&[b'a'; 100]).is_none());
        assert!(lookup(b"").is_none());
    }

    #[test]
    fn data_rows_carry_their_routing_flag() {
        for spec in COMMANDS.iter() {
            match spec.kind {
                Kind::Read { .. } => assert!(spec.flags.contains(Flags::READONLY), "{}", spec.name),
                Kind::Write { .. } => assert!(spec.flags.contains(Flags::WRITE), "{}", spec.name),
                Kind::Server(_) => {}
            }
        }
    }

    fn args(line: &str) -> Vec<Bytes> {
        line.split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    #[test]
    fn key_positions_follow_the_fixed_range() {
        let mset = lookup(b"mset").unwrap().1;
        assert_eq!(mset.key_positions(&args("mset a 1 b 2")), Some(vec![1, 3]));
        let get = lookup(b"get").unwrap().1;
        assert_eq!(get.key_positions(&args("get a")), Some(vec![1]));
        let rename = lookup(b"rename").unwrap().1;
        assert_eq!(rename.key_positions(&args("rename a b")), Some(vec![1, 2]));
        let ping = lookup(b"ping").unwrap().1;
        assert_eq!(ping.key_positions(&args("ping x")), Some(vec![]));
    }

    #[test]
    fn key_positions_count_numkeys() {
        let spec = CommandSpec {
            ..row(
                "x",
                -3,
                Flags::NONE,
                "",
                K1,
                Kind::Read {
                    check: no_check,
                    run: |_, _, _| Output::Ok,
                },
            )
        }
        .key_num(2);
        assert_eq!(
            spec.key_positions(&args("x d 2 a b c")),
            Some(vec![1, 3, 4])
        );
        assert_eq!(spec.key_positions(&args("x d 0 a")), Some(vec![1]));
        // A count that is not one of the arguments that follow.
        assert_eq!(spec.key_positions(&args("x d 9 a")), None);
        assert_eq!(spec.key_positions(&args("x d -1 a")), None);
        assert_eq!(spec.key_positions(&args("x d nope a")), None);
    }
}
