//! The command table and request execution.
//!
//! Every command is one row of [`COMMANDS`]: name, arity as Redis defines it
//! (`n` exactly n arguments including the name, `-n` at least n), flags, key
//! positions, a handler and optional subcommands. Handlers are synchronous and
//! never touch the node: they validate arguments and return an [`Action`]
//! (a reply, a write to propose, a read to run on the map, or quit). [`execute`]
//! runs that action against a [`Backend`], so the whole request→reply path is
//! testable with a fake backend here and with a real node elsewhere.
//!
//! Errors mirror Redis's texts exactly ([`CommandError`]), since client libraries
//! match on them. A command error never closes the connection.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use super::info::{self, InfoInput, ServerFacts};
use super::reply::{Protocol, Reply};
use crate::kv::{Db, Op, Output};
use crate::node::{NodeStatus, RequestError};

/// A command that failed before or instead of running. `Display` is the RESP
/// error text (without `-`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// No such command; `args` is Redis's quoted preview of the arguments.
    #[error("ERR unknown command '{name}', with args beginning with: {args}")]
    UnknownCommand {
        /// The name as sent (at most 128 bytes).
        name: String,
        /// `'a' 'b' ` (each quoted and followed by a space, ~128 bytes at most).
        args: String,
    },
    /// The argument count does not match the arity.
    #[error("ERR wrong number of arguments for '{name}' command")]
    WrongArity {
        /// Full lower-case name (`get`, `client|setname`).
        name: &'static str,
    },
    /// No such subcommand.
    #[error("ERR unknown subcommand '{subcommand}'. Try {command} HELP.")]
    UnknownSubcommand {
        /// The subcommand as sent (at most 128 bytes).
        subcommand: String,
        /// The container command, upper case.
        command: String,
    },
    /// Options that do not parse.
    #[error("ERR syntax error")]
    Syntax,
    /// An argument that must be an integer is not one.
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    /// `SELECT n` with n ≠ 0: dkv has one database.
    #[error("ERR DB index is out of range")]
    DbIndexOutOfRange,
    /// `HELLO n` with n not 2 or 3.
    #[error("NOPROTO unsupported protocol version")]
    UnsupportedProtocol,
    /// `HELLO x` with x not a number.
    #[error("ERR Protocol version is not an integer or out of range")]
    ProtocolVersionNotInteger,
    /// An unknown or incomplete `HELLO` option.
    #[error("ERR Syntax error in HELLO option '{0}'")]
    HelloOption(String),
    /// `AUTH password` while no password is configured.
    #[error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")]
    AuthWithoutPassword,
    /// `AUTH user password` for a user other than `default`.
    #[error("WRONGPASS invalid username-password pair or user is disabled.")]
    WrongPass,
    /// A client name with spaces or control characters.
    #[error("ERR Client names cannot contain spaces, newlines or special characters.")]
    InvalidClientName,
    /// `CLIENT SETINFO` with an attribute other than LIB-NAME / LIB-VER.
    #[error("ERR Unrecognized option '{0}'")]
    UnrecognizedOption(String),
    /// `CLIENT SETINFO` with a value containing spaces or control characters.
    #[error("ERR {0} cannot contain spaces, newlines or special characters.")]
    InvalidLibInfo(&'static str),
    /// The node could not serve the request.
    #[error("{}", .0.resp_text())]
    Request(#[from] RequestError),
}

impl From<CommandError> for Reply {
    fn from(error: CommandError) -> Reply {
        Reply::Error(error.to_string())
    }
}

/// Redis command flags (shown by `COMMAND`), as bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flags(u8);

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

    const fn or(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    /// True if every bit of `other` is set.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The Redis flag names (`COMMAND` output).
    fn redis_names(self) -> Vec<Reply> {
        let mut names = Vec::new();
        for (flag, name) in [
            (Flags::WRITE, "write"),
            (Flags::READONLY, "readonly"),
            (Flags::ADMIN, "admin"),
            (Flags::LOADING, "loading"),
            (Flags::FAST, "fast"),
        ] {
            if self.contains(flag) {
                names.push(Reply::Simple(name));
            }
        }
        names
    }

    /// The ACL categories (`COMMAND` output).
    fn acl_categories(self, group: &'static str) -> Vec<Reply> {
        let mut names = Vec::new();
        for (flag, name) in [
            (Flags::WRITE, "@write"),
            (Flags::READONLY, "@read"),
            (Flags::ADMIN, "@admin"),
            (Flags::FAST, "@fast"),
            (Flags::CONNECTION, "@connection"),
        ] {
            if self.contains(flag) {
                names.push(Reply::Simple(name));
            }
        }
        names.push(Reply::Simple(group));
        names
    }
}

const W: Flags = Flags::WRITE;
const R: Flags = Flags::READONLY;
const ADMIN: Flags = Flags::ADMIN;
const CONN: Flags = Flags::CONNECTION;
const FAST: Flags = Flags::FAST;
const LOADING: Flags = Flags::LOADING;

/// The per-connection state commands can see and change.
#[derive(Clone, Debug)]
pub struct Session {
    /// Client id (`CLIENT ID`, `HELLO`'s `id`), unique per process.
    pub id: u64,
    /// Reply encoding.
    pub protocol: Protocol,
    /// `CLIENT SETNAME`.
    pub name: Option<Bytes>,
    /// `CLIENT SETINFO LIB-NAME`.
    pub lib_name: Option<Bytes>,
    /// `CLIENT SETINFO LIB-VER`.
    pub lib_ver: Option<Bytes>,
    /// The client's address.
    pub peer: Option<SocketAddr>,
    /// Our address on this connection.
    pub local: Option<SocketAddr>,
    /// When the connection was accepted.
    pub connected_at: Instant,
}

impl Session {
    /// A new RESP2 session.
    pub fn new(id: u64, peer: Option<SocketAddr>, local: Option<SocketAddr>) -> Session {
        Session {
            id,
            protocol: Protocol::Resp2,
            name: None,
            lib_name: None,
            lib_ver: None,
            peer,
            local,
            connected_at: Instant::now(),
        }
    }
}

/// What commands may ask of the node without waiting.
pub trait Env {
    /// Process facts (version, port, run id ...).
    fn facts(&self) -> &ServerFacts;
    /// The node's status (role, term, indexes).
    fn status(&self) -> NodeStatus;
    /// Keys in the local map (no linearizable wait; INFO keyspace).
    fn local_key_count(&self) -> usize;
    /// Open client connections.
    fn connected_clients(&self) -> usize;
}

/// A read to run on the map once it is safe to (linearizable).
pub type ReadFn = Box<dyn FnOnce(&Db) -> Reply + Send>;

/// The node as the command path uses it: [`Env`] plus reads and writes.
pub trait Backend: Env + Sync {
    /// Proposes a write and returns the output apply computed.
    fn write(&self, op: Op) -> impl Future<Output = Result<Output, RequestError>> + Send;
    /// Runs `f` on the map after a linearizable read barrier.
    fn read(&self, f: ReadFn) -> impl Future<Output = Result<Reply, RequestError>> + Send;
}

/// What a handler decided.
pub enum Action {
    /// Answer right away.
    Reply(Reply),
    /// Propose this write; its output is the reply.
    Write(Op),
    /// Run this read; its result is the reply.
    Read(ReadFn),
    /// Reply `+OK` and close the connection.
    Quit,
}

/// A handler: validated arguments in (name included), an action out.
pub type Handler = fn(&mut Session, &dyn Env, &[Bytes]) -> Result<Action, CommandError>;

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
}

/// One row of the command table.
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
    /// Position of the last key (-1: the last argument).
    pub last_key: i64,
    /// Step between keys.
    pub key_step: i64,
    /// The handler (for containers: called when no subcommand is given).
    pub handler: Handler,
    /// Subcommands (empty for plain commands).
    pub subcommands: &'static [SubcommandSpec],
}

impl CommandSpec {
    /// True if `argc` arguments (name included) satisfy the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        arity_ok(self.arity, argc)
    }
}

fn arity_ok(arity: i32, argc: usize) -> bool {
    let n = arity.unsigned_abs() as usize;
    if arity >= 0 {
        argc == n
    } else {
        argc >= n
    }
}

macro_rules! sub {
    ($parent:literal, $name:literal, $arity:expr, $handler:expr) => {
        SubcommandSpec {
            name: $name,
            full_name: concat!($parent, "|", $name),
            arity: $arity,
            handler: $handler,
        }
    };
}

static CLIENT_SUBCOMMANDS: &[SubcommandSpec] = &[
    sub!("client", "setname", 3, client_setname),
    sub!("client", "getname", 2, client_getname),
    sub!("client", "setinfo", 4, client_setinfo),
    sub!("client", "id", 2, client_id),
    sub!("client", "info", 2, client_info),
    sub!("client", "help", 2, client_help),
];

static COMMAND_SUBCOMMANDS: &[SubcommandSpec] = &[
    sub!("command", "count", 2, command_count),
    sub!("command", "docs", -2, command_docs),
    sub!("command", "info", -2, command_info),
    sub!("command", "list", -2, command_list),
    sub!("command", "help", 2, command_help),
];

static CONFIG_SUBCOMMANDS: &[SubcommandSpec] = &[
    sub!("config", "get", -3, config_get),
    sub!("config", "help", 2, config_help),
];

const fn spec(
    name: &'static str,
    arity: i32,
    flags: Flags,
    group: &'static str,
    keys: (i64, i64, i64),
    handler: Handler,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        group,
        first_key: keys.0,
        last_key: keys.1,
        key_step: keys.2,
        handler,
        subcommands: &[],
    }
}

const NO_KEYS: (i64, i64, i64) = (0, 0, 0);

/// The command table.
pub static COMMANDS: &[CommandSpec] = &[
    spec("get", 2, R.or(FAST), "@string", (1, 1, 1), get),
    spec("set", -3, W, "@string", (1, 1, 1), set),
    spec("del", -2, W, "@keyspace", (1, -1, 1), del),
    spec("exists", -2, R.or(FAST), "@keyspace", (1, -1, 1), exists),
    spec("dbsize", 1, R.or(FAST), "@keyspace", NO_KEYS, dbsize),
    spec("ping", -1, FAST.or(CONN), "@connection", NO_KEYS, ping),
    spec("echo", 2, FAST.or(CONN), "@connection", NO_KEYS, echo),
    spec(
        "quit",
        -1,
        FAST.or(CONN).or(LOADING),
        "@connection",
        NO_KEYS,
        quit,
    ),
    spec(
        "hello",
        -1,
        FAST.or(CONN).or(LOADING),
        "@connection",
        NO_KEYS,
        hello,
    ),
    spec(
        "auth",
        -2,
        FAST.or(CONN).or(LOADING),
        "@connection",
        NO_KEYS,
        auth,
    ),
    spec(
        "select",
        2,
        FAST.or(CONN).or(LOADING),
        "@connection",
        NO_KEYS,
        select,
    ),
    CommandSpec {
        subcommands: CLIENT_SUBCOMMANDS,
        ..spec(
            "client",
            -2,
            CONN.or(LOADING),
            "@connection",
            NO_KEYS,
            missing_subcommand,
        )
    },
    CommandSpec {
        subcommands: COMMAND_SUBCOMMANDS,
        ..spec(
            "command",
            -1,
            CONN.or(LOADING),
            "@connection",
            NO_KEYS,
            command_all,
        )
    },
    CommandSpec {
        subcommands: CONFIG_SUBCOMMANDS,
        ..spec(
            "config",
            -2,
            ADMIN.or(LOADING),
            "@server",
            NO_KEYS,
            missing_subcommand,
        )
    },
    spec("info", -1, LOADING, "@server", NO_KEYS, info_command),
];

/// The row for `name` (case-insensitive), with its index in [`COMMANDS`].
pub fn lookup(name: &[u8]) -> Option<(usize, &'static CommandSpec)> {
    COMMANDS
        .iter()
        .enumerate()
        .find(|(_, spec)| name.eq_ignore_ascii_case(spec.name.as_bytes()))
}

/// The outcome of one request.
#[derive(Debug)]
pub struct Executed {
    /// The reply to send.
    pub reply: Reply,
    /// Close the connection after sending the reply (QUIT).
    pub close: bool,
    /// Index in [`COMMANDS`] of the command run (None: unknown command).
    pub command: Option<usize>,
}

/// Runs one request (`args[0]` is the command name; `args` is non-empty).
pub async fn execute<B: Backend>(backend: &B, session: &mut Session, args: &[Bytes]) -> Executed {
    let Some((index, spec)) = args.first().and_then(|name| lookup(name)) else {
        return Executed {
            reply: unknown_command(args).into(),
            close: false,
            command: None,
        };
    };
    let (reply, close) = match dispatch(spec, session, backend, args) {
        Err(error) => (error.into(), false),
        Ok(Action::Reply(reply)) => (reply, false),
        Ok(Action::Quit) => (Reply::OK, true),
        Ok(Action::Write(op)) => match backend.write(op).await {
            Ok(output) => (output.into(), false),
            Err(error) => (CommandError::from(error).into(), false),
        },
        Ok(Action::Read(f)) => match backend.read(f).await {
            Ok(reply) => (reply, false),
            Err(error) => (CommandError::from(error).into(), false),
        },
    };
    Executed {
        reply,
        close,
        command: Some(index),
    }
}

/// Arity checks, subcommand routing, then the handler.
fn dispatch(
    spec: &'static CommandSpec,
    session: &mut Session,
    env: &dyn Env,
    args: &[Bytes],
) -> Result<Action, CommandError> {
    if !spec.arity_ok(args.len()) {
        return Err(CommandError::WrongArity { name: spec.name });
    }
    if spec.subcommands.is_empty() || args.len() < 2 {
        return (spec.handler)(session, env, args);
    }
    let Some(sub) = spec
        .subcommands
        .iter()
        .find(|sub| args[1].eq_ignore_ascii_case(sub.name.as_bytes()))
    else {
        return Err(CommandError::UnknownSubcommand {
            subcommand: preview(&args[1], 128),
            command: spec.name.to_ascii_uppercase(),
        });
    };
    if !arity_ok(sub.arity, args.len()) {
        return Err(CommandError::WrongArity {
            name: sub.full_name,
        });
    }
    (sub.handler)(session, env, args)
}

/// Up to `max` bytes of `bytes`, as text.
fn preview(bytes: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).into_owned()
}

/// Redis's unknown-command error: the name, then the arguments quoted, each
/// followed by a space, until about 128 bytes are written.
pub fn unknown_command(args: &[Bytes]) -> CommandError {
    let mut preview_args = Vec::<u8>::new();
    for arg in args.iter().skip(1) {
        if preview_args.len() >= 128 {
            break;
        }
        let room = 128 - preview_args.len();
        preview_args.push(b'\'');
        preview_args.extend_from_slice(&arg[..arg.len().min(room)]);
        preview_args.extend_from_slice(b"' ");
    }
    CommandError::UnknownCommand {
        name: args.first().map(|n| preview(n, 128)).unwrap_or_default(),
        args: String::from_utf8_lossy(&preview_args).into_owned(),
    }
}

fn parse_i64(arg: &[u8]) -> Option<i64> {
    std::str::from_utf8(arg).ok()?.parse().ok()
}

// ---- keys ----------------------------------------------------------------

fn get(_: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    let key = args[1].clone();
    Ok(Action::Read(Box::new(move |db| {
        db.get(&key).cloned().map_or(Reply::Null, Reply::Bulk)
    })))
}

fn set(_: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    // Options (EX/PX/NX/XX/GET/KEEPTTL) are not supported yet.
    if args.len() != 3 {
        return Err(CommandError::Syntax);
    }
    Ok(Action::Write(Op::Set {
        key: args[1].clone(),
        value: args[2].clone(),
    }))
}

fn del(_: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    Ok(Action::Write(Op::Del {
        keys: args[1..].to_vec(),
    }))
}

fn exists(_: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    let keys = args[1..].to_vec();
    // A key named twice counts twice, as in Redis.
    Ok(Action::Read(Box::new(move |db| {
        Reply::Integer(keys.iter().filter(|k| db.contains(k)).count() as i64)
    })))
}

fn dbsize(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    Ok(Action::Read(Box::new(|db| Reply::Integer(db.len() as i64))))
}

// ---- connection ----------------------------------------------------------

fn ping(_: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    match args.len() {
        1 => Ok(Action::Reply(Reply::Simple("PONG"))),
        2 => Ok(Action::Reply(Reply::Bulk(args[1].clone()))),
        _ => Err(CommandError::WrongArity { name: "ping" }),
    }
}

fn echo(_: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    Ok(Action::Reply(Reply::Bulk(args[1].clone())))
}

fn quit(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    Ok(Action::Quit)
}

/// No password is configured: the `default` user accepts any password, as in
/// Redis with `nopass`; other users do not exist.
fn check_credentials(user: &[u8]) -> Result<(), CommandError> {
    if user == b"default" {
        Ok(())
    } else {
        Err(CommandError::WrongPass)
    }
}

fn auth(_: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    match args.len() {
        2 => Err(CommandError::AuthWithoutPassword),
        3 => check_credentials(&args[1]).map(|()| Action::Reply(Reply::OK)),
        _ => Err(CommandError::Syntax),
    }
}

/// Valid client names and library infos: printable ASCII without spaces.
fn is_valid_name(name: &[u8]) -> bool {
    name.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

fn hello(session: &mut Session, env: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    let mut protocol = session.protocol;
    if let Some(version) = args.get(1) {
        protocol = match parse_i64(version) {
            None => return Err(CommandError::ProtocolVersionNotInteger),
            Some(2) => Protocol::Resp2,
            Some(3) => Protocol::Resp3,
            Some(_) => return Err(CommandError::UnsupportedProtocol),
        };
    }
    let mut credentials = None;
    let mut name = None;
    let mut j = 2;
    while j < args.len() {
        let more = args.len() - 1 - j;
        let option = &args[j];
        if option.eq_ignore_ascii_case(b"AUTH") && more >= 2 {
            credentials = Some(args[j + 1].clone());
            j += 3;
        } else if option.eq_ignore_ascii_case(b"SETNAME") && more >= 1 {
            name = Some(args[j + 1].clone());
            j += 2;
        } else {
            return Err(CommandError::HelloOption(preview(option, 128)));
        }
    }
    if let Some(user) = credentials {
        check_credentials(&user)?;
    }
    if let Some(name) = name {
        set_client_name(session, name)?;
    }
    session.protocol = protocol;
    let status = env.status();
    Ok(Action::Reply(Reply::Map(vec![
        (Reply::bulk_str("server"), Reply::bulk_str("dkv")),
        (
            Reply::bulk_str("version"),
            Reply::bulk_str(env.facts().version),
        ),
        (Reply::bulk_str("proto"), Reply::Integer(protocol.version())),
        (Reply::bulk_str("id"), Reply::Integer(session.id as i64)),
        (Reply::bulk_str("mode"), Reply::bulk_str("standalone")),
        (
            Reply::bulk_str("role"),
            Reply::bulk_str(info::redis_role(status.role)),
        ),
        (Reply::bulk_str("modules"), Reply::Array(vec![])),
    ])))
}

fn select(_: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    match parse_i64(&args[1]) {
        None => Err(CommandError::NotInteger),
        Some(0) => Ok(Action::Reply(Reply::OK)),
        Some(_) => Err(CommandError::DbIndexOutOfRange),
    }
}

fn missing_subcommand(
    _: &mut Session,
    _: &dyn Env,
    args: &[Bytes],
) -> Result<Action, CommandError> {
    // Containers with arity -2 never get here (the arity check comes first).
    Err(unknown_command(args))
}

// ---- CLIENT --------------------------------------------------------------

fn set_client_name(session: &mut Session, name: Bytes) -> Result<(), CommandError> {
    if !is_valid_name(&name) {
        return Err(CommandError::InvalidClientName);
    }
    session.name = if name.is_empty() { None } else { Some(name) };
    Ok(())
}

fn client_setname(
    session: &mut Session,
    _: &dyn Env,
    args: &[Bytes],
) -> Result<Action, CommandError> {
    set_client_name(session, args[2].clone())?;
    Ok(Action::Reply(Reply::OK))
}

fn client_getname(session: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    Ok(Action::Reply(
        session.name.clone().map_or(Reply::Null, Reply::Bulk),
    ))
}

fn client_setinfo(
    session: &mut Session,
    _: &dyn Env,
    args: &[Bytes],
) -> Result<Action, CommandError> {
    let value = args[3].clone();
    let (slot, what) = if args[2].eq_ignore_ascii_case(b"lib-name") {
        (&mut session.lib_name, "lib-name")
    } else if args[2].eq_ignore_ascii_case(b"lib-ver") {
        (&mut session.lib_ver, "lib-ver")
    } else {
        return Err(CommandError::UnrecognizedOption(preview(&args[2], 128)));
    };
    if !is_valid_name(&value) {
        return Err(CommandError::InvalidLibInfo(what));
    }
    *slot = if value.is_empty() { None } else { Some(value) };
    Ok(Action::Reply(Reply::OK))
}

fn client_id(session: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    Ok(Action::Reply(Reply::Integer(session.id as i64)))
}

fn client_info(session: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    let text = |v: &Option<Bytes>| {
        v.as_ref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    };
    let addr = |a: Option<SocketAddr>| a.map(|a| a.to_string()).unwrap_or_default();
    let line = format!(
        "id={} addr={} laddr={} fd=-1 name={} age={} idle=0 flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 cmd=client|info user=default lib-name={} lib-ver={} resp={}\n",
        session.id,
        addr(session.peer),
        addr(session.local),
        text(&session.name),
        session.connected_at.elapsed().as_secs(),
        text(&session.lib_name),
        text(&session.lib_ver),
        session.protocol.version(),
    );
    Ok(Action::Reply(Reply::Verbatim(line)))
}

fn help(lines: &[&'static str]) -> Result<Action, CommandError> {
    Ok(Action::Reply(Reply::Array(
        lines.iter().map(|l| Reply::Simple(l)).collect(),
    )))
}

fn client_help(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    help(&[
        "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GETNAME",
        "    Return the name of the current connection.",
        "ID",
        "    Return the ID of the current connection.",
        "INFO",
        "    Return information about the current client connection.",
        "SETINFO <option> <value>",
        "    Set client meta attr. Options are: LIB-NAME, LIB-VER.",
        "SETNAME <name>",
        "    Assign the name <name> to the current connection.",
        "HELP",
        "    Print this help.",
    ])
}

// ---- COMMAND -------------------------------------------------------------

/// One command's `COMMAND INFO` entry (Redis 7 layout: name, arity, flags, first
/// key, last key, step, ACL categories, tips, key specs, subcommands).
fn command_entry(spec: &CommandSpec) -> Reply {
    let subcommands = spec
        .subcommands
        .iter()
        .map(|sub| {
            Reply::Array(vec![
                Reply::bulk_str(sub.full_name),
                Reply::Integer(i64::from(sub.arity)),
                Reply::Array(spec.flags.redis_names()),
                Reply::Integer(0),
                Reply::Integer(0),
                Reply::Integer(0),
                Reply::Array(spec.flags.acl_categories(spec.group)),
                Reply::Array(vec![]),
                Reply::Array(vec![]),
                Reply::Array(vec![]),
            ])
        })
        .collect();
    Reply::Array(vec![
        Reply::bulk_str(spec.name),
        Reply::Integer(i64::from(spec.arity)),
        Reply::Array(spec.flags.redis_names()),
        Reply::Integer(spec.first_key),
        Reply::Integer(spec.last_key),
        Reply::Integer(spec.key_step),
        Reply::Array(spec.flags.acl_categories(spec.group)),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
        Reply::Array(subcommands),
    ])
}

fn command_all(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    Ok(Action::Reply(Reply::Array(
        COMMANDS.iter().map(command_entry).collect(),
    )))
}

fn command_count(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    Ok(Action::Reply(Reply::Integer(COMMANDS.len() as i64)))
}

fn command_info(_: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    if args.len() == 2 {
        return Ok(Action::Reply(Reply::Array(
            COMMANDS.iter().map(command_entry).collect(),
        )));
    }
    Ok(Action::Reply(Reply::Array(
        args[2..]
            .iter()
            .map(|name| lookup(name).map_or(Reply::Null, |(_, spec)| command_entry(spec)))
            .collect(),
    )))
}

/// Docs are not provided: an empty map (redis-cli tolerates it).
fn command_docs(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    Ok(Action::Reply(Reply::Map(vec![])))
}

fn command_list(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    Ok(Action::Reply(Reply::Array(
        COMMANDS
            .iter()
            .map(|spec| Reply::bulk_str(spec.name))
            .collect(),
    )))
}

fn command_help(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    help(&[
        "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "(no subcommand)",
        "    Return details about all commands.",
        "COUNT",
        "    Return the total number of commands in this server.",
        "DOCS [<command-name> ...]",
        "    Return documentation details about multiple commands (none in dkv).",
        "INFO [<command-name> ...]",
        "    Return details about multiple commands.",
        "LIST",
        "    Return a list of all commands in this server.",
        "HELP",
        "    Print this help.",
    ])
}

// ---- CONFIG --------------------------------------------------------------

/// The parameters `CONFIG GET` answers, in output order.
fn config_params(env: &dyn Env) -> Vec<(&'static str, String)> {
    let facts = env.facts();
    vec![
        ("save", String::new()),
        ("appendonly", "no".to_string()),
        ("maxmemory", "0".to_string()),
        ("maxmemory-policy", "noeviction".to_string()),
        ("maxclients", facts.max_clients.to_string()),
        ("databases", "1".to_string()),
        ("port", facts.tcp_port.to_string()),
        ("cluster-enabled", "no".to_string()),
    ]
}

/// Redis-style glob match (`*`, `?`, case-insensitive), iterative.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            backtrack = Some((p, t));
            p += 1;
        } else if p < pattern.len()
            && (pattern[p] == b'?' || pattern[p].eq_ignore_ascii_case(&text[t]))
        {
            p += 1;
            t += 1;
        } else if let Some((star, matched)) = backtrack {
            p = star + 1;
            t = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

fn config_get(_: &mut Session, env: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    let pairs = config_params(env)
        .into_iter()
        .filter(|(name, _)| {
            args[2..]
                .iter()
                .any(|pattern| glob_match(pattern, name.as_bytes()))
        })
        .map(|(name, value)| (Reply::bulk_str(name), Reply::bulk(value)))
        .collect();
    Ok(Action::Reply(Reply::Map(pairs)))
}

fn config_help(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    help(&[
        "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GET <pattern>",
        "    Return parameters matching the glob-like <pattern> and their values.",
        "HELP",
        "    Print this help.",
    ])
}

// ---- INFO ----------------------------------------------------------------

fn info_command(_: &mut Session, env: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    let requested: Vec<&[u8]> = args[1..].iter().map(|a| &a[..]).collect();
    let sections = info::select_sections(&requested);
    let status = env.status();
    let text = info::render(
        &sections,
        &InfoInput {
            facts: env.facts(),
            status: &status,
            keys: env.local_key_count(),
            connected_clients: env.connected_clients(),
        },
    );
    Ok(Action::Reply(Reply::Verbatim(text)))
}

// ---- metrics -------------------------------------------------------------

/// `cache_commands_total{cmd,result}` handles, registered once per command.
#[derive(Clone)]
pub struct CommandCounters {
    /// `[ok, error]` per row of [`COMMANDS`].
    per_command: Vec<[metrics::Counter; 2]>,
    /// Unknown commands (`cmd="unknown"`); their names are not labels, so a
    /// client cannot create unbounded series.
    unknown: [metrics::Counter; 2],
}

impl CommandCounters {
    /// Registers the counters of every command.
    pub fn register() -> CommandCounters {
        let pair = |name: &'static str| {
            [
                crate::metrics::Metrics::command(name, "ok"),
                crate::metrics::Metrics::command(name, "error"),
            ]
        };
        CommandCounters {
            per_command: COMMANDS.iter().map(|spec| pair(spec.name)).collect(),
            unknown: pair("unknown"),
        }
    }

    /// Counts one executed request.
    pub fn record(&self, executed: &Executed) {
        let pair = executed
            .command
            .and_then(|i| self.per_command.get(i))
            .unwrap_or(&self.unknown);
        pair[usize::from(executed.reply.is_error())].increment(1);
    }
}

/// A backend without Raft for tests: writes apply directly to a local map.
#[cfg(test)]
pub(crate) mod fake {
    use std::sync::Mutex;

    use super::*;
    use crate::kv::Command;
    use crate::raft::{LogIndex, NodeId, Role, Term};

    pub(crate) struct FakeBackend {
        pub db: Mutex<Db>,
        pub facts: ServerFacts,
        pub role: Role,
        pub error: Option<RequestError>,
    }

    impl FakeBackend {
        pub fn new() -> FakeBackend {
            FakeBackend {
                db: Mutex::new(Db::new()),
                facts: ServerFacts::new(6379, None, None, 100),
                role: Role::Leader,
                error: None,
            }
        }
    }

    impl Env for FakeBackend {
        fn facts(&self) -> &ServerFacts {
            &self.facts
        }
        fn status(&self) -> NodeStatus {
            NodeStatus {
                id: NodeId(1),
                role: self.role,
                term: Term(3),
                leader: Some(NodeId(1)),
                leader_resp_addr: Some("127.0.0.1:6379".into()),
                commit_index: LogIndex(7),
                last_applied: LogIndex(7),
                last_log_index: LogIndex(8),
                loading: false,
                leader_changes: 1,
            }
        }
        fn local_key_count(&self) -> usize {
            self.db.lock().expect("not poisoned").len()
        }
        fn connected_clients(&self) -> usize {
            1
        }
    }

    impl Backend for FakeBackend {
        fn write(&self, op: Op) -> impl Future<Output = Result<Output, RequestError>> + Send {
            let result = match &self.error {
                Some(error) => Err(error.clone()),
                None => Ok(self
                    .db
                    .lock()
                    .expect("not poisoned")
                    .apply(&Command { ts_ms: 0, op })),
            };
            std::future::ready(result)
        }
        fn read(&self, f: ReadFn) -> impl Future<Output = Result<Reply, RequestError>> + Send {
            let result = match &self.error {
                Some(error) => Err(error.clone()),
                None => Ok(f(&self.db.lock().expect("not poisoned"))),
            };
            std::future::ready(result)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeBackend;
    use super::*;

    struct Client {
        backend: FakeBackend,
        session: Session,
    }

    impl Client {
        fn new() -> Client {
            Client {
                backend: FakeBackend::new(),
                session: Session::new(7, None, None),
            }
        }

        fn run(&mut self, line: &str) -> Executed {
            let args: Vec<Bytes> = line
                .split(' ')
                .map(|a| Bytes::copy_from_slice(a.as_bytes()))
                .collect();
            futures_util::FutureExt::now_or_never(execute(&self.backend, &mut self.session, &args))
                .expect("the fake backend never waits")
        }

        fn reply(&mut self, line: &str) -> Reply {
            self.run(line).reply
        }

        fn error(&mut self, line: &str) -> String {
            match self.reply(line) {
                Reply::Error(text) => text,
                other => panic!("{line}: expected an error, got {other:?}"),
            }
        }
    }

    fn bulk(text: &str) -> Reply {
        Reply::bulk_str(text)
    }

    #[test]
    fn every_command_reports_arity_errors_with_its_lower_case_name() {
        let mut client = Client::new();
        for spec in COMMANDS {
            // One argument short of the minimum, or one too many for exact arities.
            let argc = if spec.arity > 0 {
                spec.arity as usize + 1
            } else {
                spec.arity.unsigned_abs() as usize - 1
            };
            if argc == 0 {
                continue;
            }
            let mut line = spec.name.to_ascii_uppercase();
            for _ in 1..argc {
                line.push_str(" x");
            }
            assert_eq!(
                client.error(&line),
                format!("ERR wrong number of arguments for '{}' command", spec.name),
                "{line}"
            );
        }
    }

    #[test]
    fn subcommands_report_arity_errors_with_their_full_name() {
        let mut client = Client::new();
        for spec in COMMANDS {
            for sub in spec.subcommands {
                let argc = if sub.arity > 0 {
                    sub.arity as usize + 1
                } else {
                    sub.arity.unsigned_abs() as usize - 1
                };
                if argc < 2 {
                    continue;
                }
                let mut line = format!("{} {}", spec.name, sub.name.to_ascii_uppercase());
                for _ in 2..argc {
                    line.push_str(" x");
                }
                assert_eq!(
                    client.error(&line),
                    format!(
                        "ERR wrong number of arguments for '{}' command",
                        sub.full_name
                    ),
                    "{line}"
                );
            }
        }
        assert_eq!(
            client.error("PING a b"),
            "ERR wrong number of arguments for 'ping' command"
        );
    }

    #[test]
    fn unknown_command_text_matches_redis() {
        let mut client = Client::new();
        assert_eq!(
            client.error("foo a b"),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
        assert_eq!(
            client.error("foo"),
            "ERR unknown command 'foo', with args beginning with: "
        );
        let long = "x".repeat(200);
        assert_eq!(
            client.error(&format!("foo {long} y")),
            format!(
                "ERR unknown command 'foo', with args beginning with: '{}' ",
                "x".repeat(128)
            )
        );
        assert!(client.run("foo").command.is_none());
    }

    #[test]
    fn unknown_subcommand_text_matches_redis() {
        let mut client = Client::new();
        assert_eq!(
            client.error("CLIENT xx"),
            "ERR unknown subcommand 'xx'. Try CLIENT HELP."
        );
        assert_eq!(
            client.error("config Bogus"),
            "ERR unknown subcommand 'Bogus'. Try CONFIG HELP."
        );
        assert_eq!(
            client.error("COMMAND xx"),
            "ERR unknown subcommand 'xx'. Try COMMAND HELP."
        );
    }

    #[test]
    fn command_names_are_case_insensitive() {
        let mut client = Client::new();
        assert_eq!(client.reply("sEt k v"), Reply::OK);
        assert_eq!(client.reply("GET k"), bulk("v"));
        assert_eq!(client.reply("get k"), bulk("v"));
        assert_eq!(client.reply("PiNg"), Reply::Simple("PONG"));
        assert_eq!(client.reply("client GetName"), Reply::Null);
    }

    #[test]
    fn set_get_del_exists_dbsize() {
        let mut client = Client::new();
        assert_eq!(client.reply("GET a"), Reply::Null);
        assert_eq!(client.reply("SET a 1"), Reply::OK);
        assert_eq!(client.reply("SET b 2"), Reply::OK);
        assert_eq!(client.reply("EXISTS a a b zz"), Reply::Integer(3));
        assert_eq!(client.reply("DBSIZE"), Reply::Integer(2));
        assert_eq!(client.reply("DEL a a zz"), Reply::Integer(1));
        assert_eq!(client.reply("GET a"), Reply::Null);
        assert_eq!(client.error("SET a b EX"), "ERR syntax error");
    }

    #[test]
    fn node_errors_become_their_resp_text() {
        let mut client = Client::new();
        client.backend.error = Some(RequestError::NoLeader);
        assert_eq!(client.error("SET a 1"), "CLUSTERDOWN No raft leader");
        client.backend.error = Some(RequestError::Loading);
        assert!(client.error("GET a").starts_with("LOADING "));
        // Connection commands do not touch the node.
        assert_eq!(client.reply("PING"), Reply::Simple("PONG"));
    }

    #[test]
    fn ping_echo_quit() {
        let mut client = Client::new();
        assert_eq!(client.reply("PING hi"), bulk("hi"));
        assert_eq!(client.reply("ECHO x"), bulk("x"));
        let quit = client.run("QUIT");
        assert_eq!((quit.reply, quit.close), (Reply::OK, true));
    }

    #[test]
    fn auth_texts_match_redis_7() {
        let mut client = Client::new();
        assert_eq!(
            client.error("AUTH x"),
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
        );
        assert_eq!(
            client.error("AUTH u p"),
            "WRONGPASS invalid username-password pair or user is disabled."
        );
        assert_eq!(client.reply("AUTH default p"), Reply::OK);
        assert_eq!(client.error("AUTH a b c"), "ERR syntax error");
    }

    #[test]
    fn select_only_accepts_db_zero() {
        let mut client = Client::new();
        assert_eq!(client.reply("SELECT 0"), Reply::OK);
        assert_eq!(client.error("SELECT 1"), "ERR DB index is out of range");
        assert_eq!(client.error("SELECT -1"), "ERR DB index is out of range");
        assert_eq!(
            client.error("SELECT x"),
            "ERR value is not an integer or out of range"
        );
    }

    #[test]
    fn hello_switches_protocol_and_reports_the_server() {
        let mut client = Client::new();
        let Reply::Map(pairs) = client.reply("HELLO 3") else {
            panic!("HELLO replies with a map");
        };
        assert_eq!(client.session.protocol, Protocol::Resp3);
        let keys: Vec<Reply> = pairs.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(
            keys,
            ["server", "version", "proto", "id", "mode", "role", "modules"]
                .map(bulk)
                .to_vec()
        );
        assert_eq!(pairs[2].1, Reply::Integer(3));
        assert_eq!(pairs[3].1, Reply::Integer(7));
        assert_eq!(pairs[5].1, bulk("master"));
        assert_eq!(pairs[6].1, Reply::Array(vec![]));
        client.reply("HELLO 2");
        assert_eq!(client.session.protocol, Protocol::Resp2);
        client.backend.role = crate::raft::Role::Follower;
        let Reply::Map(pairs) = client.reply("HELLO") else {
            panic!("HELLO replies with a map");
        };
        assert_eq!(pairs[5].1, bulk("replica"));
    }

    #[test]
    fn hello_errors_match_redis() {
        let mut client = Client::new();
        assert_eq!(
            client.error("HELLO 4"),
            "NOPROTO unsupported protocol version"
        );
        assert_eq!(
            client.error("HELLO 1"),
            "NOPROTO unsupported protocol version"
        );
        assert_eq!(
            client.error("HELLO x"),
            "ERR Protocol version is not an integer or out of range"
        );
        assert_eq!(
            client.error("HELLO 3 SETNAME"),
            "ERR Syntax error in HELLO option 'SETNAME'"
        );
        assert_eq!(
            client.error("HELLO 3 SETNAME a b"),
            "ERR Syntax error in HELLO option 'b'"
        );
        assert_eq!(
            client.error("HELLO 3 AUTH u p"),
            "WRONGPASS invalid username-password pair or user is disabled."
        );
        assert_eq!(
            client.session.protocol,
            Protocol::Resp2,
            "errors change nothing"
        );
        assert!(matches!(
            client.reply("HELLO 3 AUTH default pw SETNAME app"),
            Reply::Map(_)
        ));
        assert_eq!(client.reply("CLIENT GETNAME"), bulk("app"));
    }

    #[test]
    fn client_subcommands() {
        let mut client = Client::new();
        assert_eq!(client.reply("CLIENT SETNAME conn1"), Reply::OK);
        assert_eq!(client.reply("CLIENT GETNAME"), bulk("conn1"));
        assert_eq!(
            client.error("CLIENT SETNAME a\nb"),
            "ERR Client names cannot contain spaces, newlines or special characters."
        );
        assert_eq!(client.reply("CLIENT SETINFO LIB-NAME redis-py"), Reply::OK);
        assert_eq!(client.reply("CLIENT SETINFO lib-ver 5.0.1"), Reply::OK);
        assert_eq!(
            client.error("CLIENT SETINFO foo 1"),
            "ERR Unrecognized option 'foo'"
        );
        assert_eq!(client.reply("CLIENT ID"), Reply::Integer(7));
        let Reply::Verbatim(info) = client.reply("CLIENT INFO") else {
            panic!("CLIENT INFO is text");
        };
        assert!(info.starts_with("id=7 "), "{info}");
        assert!(info.contains(" name=conn1 "), "{info}");
        assert!(
            info.contains(" lib-name=redis-py lib-ver=5.0.1 resp=2\n"),
            "{info}"
        );
        assert!(matches!(client.reply("CLIENT HELP"), Reply::Array(_)));
    }

    #[test]
    fn command_introspection() {
        let mut client = Client::new();
        assert_eq!(
            client.reply("COMMAND COUNT"),
            Reply::Integer(COMMANDS.len() as i64)
        );
        let Reply::Array(all) = client.reply("COMMAND") else {
            panic!("COMMAND is an array");
        };
        assert_eq!(all.len(), COMMANDS.len());
        let Reply::Array(info) = client.reply("COMMAND INFO get nosuch") else {
            panic!("COMMAND INFO is an array");
        };
        assert_eq!(info[1], Reply::Null);
        let Reply::Array(get) = &info[0] else {
            panic!("an entry is an array");
        };
        assert_eq!(get[0], bulk("get"));
        assert_eq!(get[1], Reply::Integer(2));
        assert_eq!(
            get[2],
            Reply::Array(vec![Reply::Simple("readonly"), Reply::Simple("fast")])
        );
        assert_eq!(
            &get[3..6],
            &[Reply::Integer(1), Reply::Integer(1), Reply::Integer(1)]
        );
        assert_eq!(client.reply("COMMAND DOCS"), Reply::Map(vec![]));
        assert_eq!(client.reply("COMMAND DOCS get"), Reply::Map(vec![]));
    }

    #[test]
    fn config_get_returns_pairs() {
        let mut client = Client::new();
        assert_eq!(
            client.reply("CONFIG GET save"),
            Reply::Map(vec![(bulk("save"), bulk(""))])
        );
        assert_eq!(
            client.reply("CONFIG GET appendonly SAVE"),
            Reply::Map(vec![
                (bulk("save"), bulk("")),
                (bulk("appendonly"), bulk("no"))
            ])
        );
        assert_eq!(client.reply("CONFIG GET nosuch"), Reply::Map(vec![]));
        let Reply::Map(pairs) = client.reply("CONFIG GET maxmemory*") else {
            panic!("CONFIG GET is a map");
        };
        assert_eq!(pairs.len(), 2);
        assert_eq!(
            client.error("CONFIG GET"),
            "ERR wrong number of arguments for 'config|get' command"
        );
    }

    #[test]
    fn glob_matches_like_redis() {
        assert!(glob_match(b"*", b"save"));
        assert!(glob_match(b"max*", b"maxmemory-policy"));
        assert!(glob_match(b"s?ve", b"save"));
        assert!(glob_match(b"*memory*", b"maxmemory"));
        assert!(!glob_match(b"max", b"maxmemory"));
        assert!(!glob_match(b"*x", b"save"));
    }

    #[test]
    fn info_has_redis_sections_and_raft() {
        let mut client = Client::new();
        let Reply::Verbatim(all) = client.reply("INFO") else {
            panic!("INFO is text");
        };
        for header in [
            "# Server\r\n",
            "# Clients\r\n",
            "# Persistence\r\n",
            "# Replication\r\n",
            "# Raft\r\n",
            "# Keyspace\r\n",
        ] {
            assert!(all.contains(header), "{header} missing in {all}");
        }
        assert!(all.contains("\r\nloading:0\r\n"));
        assert!(all.contains("\r\nrole:master\r\n"));
        assert!(all.contains("\r\nraft_term:3\r\n"));
        assert!(all.contains("\r\nraft_commit_index:7\r\n"));
        assert_eq!(
            client.reply("INFO keyspace"),
            Reply::Verbatim("# Keyspace\r\n".into())
        );
        client.reply("SET a 1");
        assert_eq!(
            client.reply("INFO KEYSPACE"),
            Reply::Verbatim("# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n".into())
        );
        assert_eq!(client.reply("INFO nosuch"), Reply::Verbatim(String::new()));
        let Reply::Verbatim(two) = client.reply("INFO clients keyspace") else {
            panic!("INFO is text");
        };
        assert!(two.starts_with("# Clients\r\n"));
        assert!(two.contains("\r\n\r\n# Keyspace\r\n"));
    }

    #[test]
    fn counters_count_ok_and_errors() {
        let counters = CommandCounters::register();
        let mut client = Client::new();
        counters.record(&client.run("PING"));
        counters.record(&client.run("nosuch"));
        counters.record(&client.run("GET"));
    }
}
