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
//! The table itself is in [`super::commands`], one module per command group.
//!
//! Errors mirror Redis's texts exactly ([`CommandError`]), since client libraries
//! match on them. A command error never closes the connection.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::commands::acl::AclLog;
use super::commands::clients::{ClientRegistry, ClientShared};
use super::commands::transactions;
use super::info::ServerFacts;
use super::reply::{Protocol, Reply};
use crate::acl::{Denied, KeyAccess, Users};
pub use crate::cmd::{arity_ok, lookup, CommandSpec, Flags, Kind, SubcommandSpec, COMMANDS};
use crate::kv::{Db, KvInfo, Op, Output, WatchToken};
use crate::node::{NodeStatus, ReadCtx, RequestError};

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
    /// `SELECT n` with n outside 0..16.
    #[error("ERR DB index is out of range")]
    DbIndexOutOfRange,
    /// `MULTI` inside `MULTI`.
    #[error("ERR MULTI calls can not be nested")]
    NestedMulti,
    /// `EXEC` without `MULTI`.
    #[error("ERR EXEC without MULTI")]
    ExecWithoutMulti,
    /// `DISCARD` without `MULTI`.
    #[error("ERR DISCARD without MULTI")]
    DiscardWithoutMulti,
    /// `WATCH` after `MULTI`.
    #[error("ERR WATCH inside MULTI is not allowed")]
    WatchInsideMulti,
    /// A command queued after `MULTI` beyond dkv's bound on a transaction
    /// (the transaction is then discarded at `EXEC`, with `EXECABORT`).
    #[error("ERR MULTI queue is full: a transaction holds at most {max_commands} commands and {max_bytes} bytes of arguments in dkv; EXEC will discard it")]
    MultiQueueFull {
        /// [`transactions::MAX_QUEUED_COMMANDS`].
        max_commands: usize,
        /// [`transactions::MAX_QUEUED_BYTES`].
        max_bytes: usize,
    },
    /// `EXEC` of a transaction with a queuing error.
    #[error("EXECABORT Transaction discarded because of previous errors.")]
    ExecAbort,
    /// `CLIENT KILL` found nobody.
    #[error("ERR No such client")]
    NoSuchClient,
    /// `CLIENT KILL ID` with a value that is not a positive integer.
    #[error("ERR client-id should be greater than 0")]
    ClientIdNotPositive,
    /// `CLIENT LIST ID` with a value that is not an integer.
    #[error("ERR Invalid client ID")]
    InvalidClientId,
    /// `CLIENT LIST TYPE` / `CLIENT KILL TYPE` with an unknown type.
    #[error("ERR Unknown client type '{0}'")]
    UnknownClientType(String),
    /// `CLIENT KILL USER` naming a user that does not exist.
    #[error("ERR No such user '{0}'")]
    NoSuchUser(String),
    /// `CONFIG SET` of a known parameter with a value it refuses (Redis's text).
    #[error("ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}")]
    ConfigSetFailed {
        /// The parameter, as given.
        name: String,
        /// Why the value was refused.
        reason: String,
    },
    /// `CONFIG SET` of a parameter dkv does not have or cannot change.
    #[error("ERR Unknown option or number of arguments for CONFIG SET - '{0}'")]
    UnknownConfig(String),
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
    /// Wrong user name or password, or a disabled user.
    #[error("WRONGPASS invalid username-password pair or user is disabled.")]
    WrongPass,
    /// A command other than AUTH / HELLO before authenticating.
    #[error("NOAUTH Authentication required.")]
    NoAuth,
    /// `HELLO` without `AUTH` on a connection not authenticated.
    #[error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")]
    HelloNoAuth,
    /// The user may not run this command (its full name).
    #[error("NOPERM this user has no permissions to run the '{0}' command")]
    NoPermCommand(&'static str),
    /// The user may not access one of the command's keys.
    #[error("NOPERM this user has no permissions to access one of the keys used as arguments")]
    NoPermKey,
    /// The user may not use one of the command's channels.
    #[error("NOPERM this user has no permissions to access one of the channels used as arguments")]
    NoPermChannel,
    /// The connection's user no longer exists (it is closed).
    #[error("ERR the user of this connection was deleted")]
    UserDeleted,
    /// An ACL command's error with Redis's text (after `ERR `).
    #[error("ERR {0}")]
    Acl(String),
    /// A client name with spaces or control characters.
    #[error("ERR Client names cannot contain spaces, newlines or special characters.")]
    InvalidClientName,
    /// `CLIENT SETINFO` with an attribute other than LIB-NAME / LIB-VER.
    #[error("ERR Unrecognized option '{0}'")]
    UnrecognizedOption(String),
    /// `CLIENT SETINFO` with a value containing spaces or control characters.
    #[error("ERR {0} cannot contain spaces, newlines or special characters.")]
    InvalidLibInfo(&'static str),
    /// A key-space command's error from its own parser (Redis's full text,
    /// code included).
    #[error("{0}")]
    Data(String),
    /// The node could not serve the request.
    #[error("{}", .0.resp_text())]
    Request(#[from] RequestError),
}

impl CommandError {
    /// `-ERR <text>`.
    pub(crate) fn err(text: &str) -> CommandError {
        CommandError::Data(format!("ERR {text}"))
    }

    /// The error a key-space check answered (an `Output::Error`).
    pub(crate) fn from_output(output: Output) -> CommandError {
        match output {
            Output::Error(text) => CommandError::Data(text),
            other => CommandError::Data(format!("ERR unexpected check result {other:?}")),
        }
    }
}

impl From<CommandError> for Reply {
    fn from(error: CommandError) -> Reply {
        Reply::Error(error.to_string())
    }
}

/// A command queued by `MULTI`.
#[derive(Clone, Debug)]
pub struct Queued {
    /// The database selected when it runs.
    pub db: u8,
    /// The command.
    pub args: Vec<Bytes>,
    /// True if it runs in apply (part of the EXEC log entry); false for
    /// connection and introspection commands, run locally after it.
    pub in_log: bool,
}

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
    /// The selected database (`SELECT`).
    pub db: u8,
    /// Commands queued since `MULTI` (None outside a transaction).
    pub multi: Option<Vec<Queued>>,
    /// A queued command was refused: `EXEC` answers `EXECABORT`.
    pub multi_error: bool,
    /// The database the next queued command runs in (SELECT inside MULTI).
    pub multi_db: u8,
    /// Argument bytes queued since `MULTI` (bounded, see
    /// [`transactions::MAX_QUEUED_BYTES`]).
    pub multi_bytes: usize,
    /// `WATCH`ed keys with what was seen of them.
    pub watched: Vec<WatchToken>,
    /// `READONLY`: reads skip the ReadIndex wait (stale reads).
    pub readonly: bool,
    /// The last command name (CLIENT LIST's `cmd`: `get`, `client|list`).
    pub last_command: &'static str,
    /// This connection's entry in the client registry (CLIENT LIST / KILL),
    /// refreshed after every command; None when not registered (tests).
    pub client: Option<Arc<ClientShared>>,
    /// The ACL user this connection runs as (`default` until AUTH).
    pub user: Bytes,
    /// False until the client authenticates, unless the default user needed
    /// no password when the connection was accepted (as Redis decides).
    pub authenticated: bool,
    /// Channels plus patterns subscribed to (Redis's count in SUBSCRIBE's
    /// confirmations), as of the last confirmation sent.
    pub subscriptions: i64,
    /// The patterns among `subscriptions` (CLIENT LIST's `psub`; `sub` is
    /// the rest).
    pub pattern_subscriptions: i64,
    /// Shard channels subscribed to.
    pub shard_subscriptions: i64,
    /// `CLIENT TRACKING ON` options (None: tracking off).
    pub tracking: Option<crate::node::tracking::Mode>,
    /// `CLIENT CACHING` was given for the next command (Redis's
    /// `CLIENT_TRACKING_CACHING`).
    pub caching: bool,
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
            db: 0,
            multi: None,
            multi_error: false,
            multi_db: 0,
            multi_bytes: 0,
            watched: Vec::new(),
            readonly: false,
            last_command: "NULL",
            client: None,
            user: Bytes::from_static(b"default"),
            authenticated: true,
            subscriptions: 0,
            pattern_subscriptions: 0,
            shard_subscriptions: 0,
            tracking: None,
            caching: false,
        }
    }

    /// True while the client holds any subscription (RESP2's subscribed
    /// mode; the `pubsub` class of the output buffer limits).
    pub fn subscribed(&self) -> bool {
        self.subscriptions > 0 || self.shard_subscriptions > 0
    }

    /// Runs as the `default` user, authenticated only if it needs no
    /// password (a new connection, `RESET`).
    pub fn reset_user(&mut self, users: &Users) {
        self.user = Bytes::from_static(b"default");
        self.authenticated = users.get(b"default").is_some_and(|u| u.enabled && u.nopass);
    }

    /// Leaves any transaction and forgets the watched keys.
    pub fn discard_transaction(&mut self) {
        self.multi = None;
        self.multi_error = false;
        self.multi_bytes = 0;
        self.watched.clear();
    }
}

/// What commands may ask of the node without waiting.
pub trait Env {
    /// Process facts (version, port, run id ...).
    fn facts(&self) -> &ServerFacts;
    /// The node's status (role, term, indexes).
    fn status(&self) -> NodeStatus;
    /// The local map's figures (no linearizable wait; INFO, CONFIG GET).
    fn kv_info(&self) -> KvInfo;
    /// Open client connections.
    fn connected_clients(&self) -> usize;
    /// The registry of open connections (CLIENT LIST / KILL); None when the
    /// environment has none (then only the current connection is known).
    fn clients(&self) -> Option<&ClientRegistry> {
        None
    }
    /// The ACL users as this node has applied them (permission checks).
    fn users(&self) -> Arc<Users> {
        Arc::default()
    }
    /// This node's ACL LOG; None when the environment keeps none.
    fn acl_log(&self) -> Option<&AclLog> {
        None
    }
    /// The ACL file (`ACL LOAD` / `ACL SAVE`), if configured.
    fn acl_file(&self) -> Option<&std::path::Path> {
        None
    }
    /// The client limits (CONFIG GET/SET, INFO); None when the environment
    /// has none (then the defaults are shown and cannot be changed).
    fn client_limits(&self) -> Option<&crate::server::client_limits::ClientLimits> {
        None
    }
    /// The clients blocked on keys here; None when the environment cannot
    /// block (blocking commands then answer after one attempt, as their
    /// timeout had passed).
    fn key_waits(&self) -> Option<&Arc<crate::node::wakeups::KeyWaits>> {
        None
    }
    /// Whether this node's applied script cache holds `sha` (a read script
    /// call whose body is not cached is proposed instead, to cache it).
    fn script_cached(&self, sha: &str) -> bool {
        let _ = sha;
        true
    }
    /// Whether this node's applied libraries give the function `name` the
    /// `no-writes` flag (an `FCALL` of it is then served as a read).
    fn function_reads(&self, name: &[u8]) -> bool {
        let _ = name;
        false
    }
    /// This node's Pub/Sub connections; None when the environment has no
    /// node (then SUBSCRIBE and its forms are refused).
    fn pubsub(&self) -> Option<&Arc<crate::node::pubsub::PubSubHub>> {
        None
    }

    /// This node's client-side caching state (`CLIENT TRACKING`).
    fn tracking(&self) -> Option<&Arc<crate::node::tracking::TrackingHub>> {
        None
    }

    /// This node's command statistics, slow log, latency monitor and
    /// MONITOR clients; None when the environment keeps none.
    fn stats(&self) -> Option<&Arc<super::stats::Stats>> {
        None
    }
    /// `FAILOVER`: starts handing leadership to `to` (a member of the
    /// leader's choosing when `None`) in the background, waiting at most
    /// `wait` to see it lead. False when one started here is still running.
    fn start_failover(&self, _to: Option<crate::raft::NodeId>, _wait: std::time::Duration) -> bool {
        false
    }
    /// Whether a `FAILOVER` started on this node is still running.
    fn failover_running(&self) -> bool {
        false
    }
    /// `SAVE`, `BGSAVE`, `BGREWRITEAOF`: asks the node for a snapshot of
    /// its map now (`schedule`: after the one being written, if any). None
    /// when the environment has no node.
    fn snapshot_now(&self, schedule: bool) -> Option<super::commands::persistence::SnapshotJob> {
        let _ = schedule;
        None
    }
    /// `SHUTDOWN`: asks the process to stop as SIGTERM would (`now`: without
    /// handing leadership over first; `save`: after a snapshot). False when
    /// the environment cannot stop (tests) or a shutdown was asked already.
    fn request_shutdown(&self, how: super::commands::persistence::Shutdown) -> bool {
        let _ = how;
        false
    }
    /// `CONFIG RESETSTAT`: zeroes [`Env::stats`] and the map's read counts.
    fn reset_stats(&self) {
        if let Some(stats) = self.stats() {
            stats.reset();
        }
    }
    /// The script calls running on this node (BUSY, SCRIPT KILL,
    /// `busy-reply-threshold`); None when the environment runs none.
    fn scripts(&self) -> Option<&crate::node::scripts::ScriptMonitor> {
        None
    }
    /// The voters with their addresses and the leader, current or last
    /// known (`CLUSTER SLOTS` and its kin); None when the environment has
    /// no node (then `CLUSTER` shows this node alone).
    fn membership(&self) -> Option<crate::node::Membership> {
        None
    }
}

/// A read to run on the map once it is safe to (linearizable).
pub type ReadFn = ReadWith<Reply>;

/// A read producing any `R` (WATCH's tokens).
pub type ReadWith<R> = Box<dyn FnOnce(&Db, ReadCtx) -> R + Send>;

/// The node as the command path uses it: [`Env`] plus reads and writes.
pub trait Backend: Env + Sync {
    /// Proposes a write and returns the output apply computed.
    fn write(&self, op: Op) -> impl Future<Output = Result<Output, RequestError>> + Send;
    /// Proposes writes that must apply in this order (one connection's
    /// pipelined writes) and returns each one's output, in order.
    fn write_batch(
        &self,
        ops: Arc<Vec<Op>>,
    ) -> impl Future<Output = Vec<Result<Output, RequestError>>> + Send;
    /// Runs `f` on the map after a linearizable read barrier.
    fn read<R: Send + 'static>(
        &self,
        f: ReadWith<R>,
    ) -> impl Future<Output = Result<R, RequestError>> + Send;
    /// Runs `f` on the local map at once (READONLY connections): possibly stale.
    fn read_local<R>(&self, f: impl FnOnce(&Db, ReadCtx) -> R) -> Result<R, RequestError>;
}

/// What a handler decided.
pub enum Action {
    /// Answer right away.
    Reply(Reply),
    /// Propose this write; its output is the reply.
    Write(Op),
    /// Propose the write made of the request's own arguments, in the form
    /// [`Lent`] names: whoever holds the arguments moves them into the
    /// operation rather than copying them ([`Lent::take`]). Only
    /// [`prepare`] answers this; [`dispatch`] answers [`Action::Write`].
    WriteArgs(Lent),
    /// Run this read; its result is the reply.
    Read(ReadFn),
    /// Reply `+OK` and close the connection.
    Quit,
    /// `WATCH` these keys (a linearizable read of their versions).
    Watch(Vec<Bytes>),
    /// `EXEC` the queued transaction (the name as the client sent it, for
    /// MONITOR).
    Exec(Bytes),
    /// A blocking command outside MULTI: attempt, then wait for its keys.
    Block(super::blocking::Block),
    /// `WAIT`: count (and wait for) the members holding this client's writes.
    Wait(super::commands::replication::Wait),
    /// `SUBSCRIBE`, `UNSUBSCRIBE` and their forms: carried out by the
    /// connection (`server/pubsub.rs`).
    PubSub(super::pubsub::Change),
    /// `MONITOR`: the connection attaches to the node's monitor feed
    /// (`server/monitor.rs`) and answers `+OK`.
    Monitor,
    /// `DEBUG SLEEP`: answer `+OK` after this long.
    Sleep(std::time::Duration),
    /// `SAVE`, `BGSAVE`, `BGREWRITEAOF`: the reply once the node answered
    /// (SAVE: once the snapshot is durable).
    Snapshot(super::commands::persistence::SnapshotAsk),
    /// `SHUTDOWN` was accepted: the process is stopping. Redis sends no
    /// reply; the connection closes when the process exits.
    Shutdown,
    /// `MIGRATE`: read the keys, send them to the target, delete them here.
    Migrate(Box<super::commands::migrate::Migrate>),
}

/// A handler: validated arguments in (name included), an action out.
pub type Handler = fn(&mut Session, &dyn Env, &[Bytes]) -> Result<Action, CommandError>;

/// The outcome of one request.
#[derive(Debug)]
pub struct Executed {
    /// The reply to send.
    pub reply: Reply,
    /// Close the connection after sending the reply (QUIT).
    pub close: bool,
    /// Index in [`COMMANDS`] of the command run (None: unknown command).
    pub command: Option<usize>,
    /// Refused before it ran (unknown command or subcommand, arity, NOAUTH,
    /// NOPERM): Redis's `rejected_calls`, not a call.
    pub rejected: bool,
    /// Queued inside MULTI (`+QUEUED`): not a call yet. EXEC counts it and
    /// shows it to MONITOR when it runs, as Redis does.
    pub queued: bool,
}

/// Runs one request (`args[0]` is the command name; `args` is non-empty).
///
/// Inside `MULTI`, every command but EXEC/DISCARD/MULTI/WATCH/QUIT/RESET is
/// checked (unknown name, arity, subcommand — Redis's queue-time checks, which
/// make EXEC answer EXECABORT) and queued with `+QUEUED`.
pub async fn execute<B: Backend>(backend: &B, session: &mut Session, args: &[Bytes]) -> Executed {
    let executed = match prepare(backend, session, args) {
        Prepared::Done(executed) => executed,
        Prepared::Action { action, command } => {
            let action = action.with_args(args);
            let (reply, close) = run_action(backend, session, action).await;
            Executed {
                reply,
                close,
                command: Some(command),
                rejected: false,
                queued: false,
            }
        }
    };
    publish(session);
    executed
}

/// Refreshes this connection's CLIENT LIST entry (after each request).
pub fn publish(session: &Session) {
    if let Some(client) = &session.client {
        client.publish(session);
    }
}

/// `cmd=` of CLIENT LIST: the subcommand's full name when there is one.
pub(crate) fn command_label(spec: &'static CommandSpec, args: &[Bytes]) -> &'static str {
    args.get(1)
        .and_then(|sub| {
            spec.subcommands
                .iter()
                .find(|s| sub.eq_ignore_ascii_case(s.name.as_bytes()))
        })
        .map_or(spec.name, |s| s.full_name)
}

/// True when `args` has the arity of its command (or subcommand). Redis
/// answers an arity error or an unknown subcommand before it refuses a
/// command for the connection's subscribed mode.
fn well_formed(spec: &CommandSpec, args: &[Bytes]) -> bool {
    if spec.subcommands.is_empty() {
        return spec.arity_ok(args.len());
    }
    args.get(1)
        .and_then(|sub| {
            spec.subcommands
                .iter()
                .find(|s| sub.eq_ignore_ascii_case(s.name.as_bytes()))
        })
        .is_some_and(|sub| crate::cmd::arity_ok(sub.arity, args.len()))
}

/// A request checked and dispatched, not yet carried out.
pub enum Prepared {
    /// Answered already (errors, `QUEUED`, replies that need no node).
    Done(Executed),
    /// Needs the node: carry `action` out ([`run_action`]), in request order.
    Action {
        /// What the handler decided.
        action: Action,
        /// Index in [`COMMANDS`] of the command.
        command: usize,
    },
}

/// Everything [`execute`] does before it waits for the node: lookup, queuing
/// inside `MULTI`, arity and subcommand checks, the handler. Synchronous, so
/// a connection can prepare a pipeline's requests in order and then carry
/// out their writes as one ordered batch.
pub fn prepare<B: Backend>(backend: &B, session: &mut Session, args: &[Bytes]) -> Prepared {
    let Some((index, spec)) = args.first().and_then(|name| lookup(name)) else {
        if session.multi.is_some() {
            session.multi_error = true;
        }
        return Prepared::Done(Executed {
            reply: unknown_command(args).into(),
            close: false,
            command: None,
            rejected: true,
            queued: false,
        });
    };
    session.last_command = command_label(spec, args);
    // Before anything that takes the map's lock, which a running script
    // holds (the ACL check reads the users from the map).
    if let Some(busy) = busy_refusal(backend, spec, args) {
        if session.multi.is_some() {
            session.multi_error = true;
        }
        return Prepared::Done(Executed {
            reply: Reply::error(busy),
            close: false,
            command: Some(index),
            rejected: true,
            queued: false,
        });
    }
    if let Err(error) = gate(backend, session, spec, args) {
        if session.multi.is_some() {
            session.multi_error = true;
        }
        let close = error == CommandError::UserDeleted;
        return Prepared::Done(Executed {
            reply: error.into(),
            close,
            command: Some(index),
            rejected: true,
            queued: false,
        });
    }
    if session.protocol == Protocol::Resp2
        && session.subscribed()
        && !super::pubsub::allowed_in_subscribed_mode(spec.name)
        && well_formed(spec, args)
    {
        return Prepared::Done(Executed {
            reply: super::pubsub::refused_in_subscribed_mode(command_label(spec, args)).into(),
            close: false,
            command: Some(index),
            rejected: true,
            queued: false,
        });
    }
    if session.multi.is_some() && !spec.flags.contains(Flags::NO_QUEUE) {
        let mut rejected = false;
        let reply = match resolve(spec, args) {
            Err(error) => {
                session.multi_error = true;
                rejected = true;
                error.into()
            }
            Ok(_) => match transactions::queue(session, args) {
                Ok(()) => Reply::Simple("QUEUED"),
                Err(error) => {
                    session.multi_error = true;
                    error.into()
                }
            },
        };
        let queued = !rejected && !reply.is_error();
        return Prepared::Done(Executed {
            reply,
            close: false,
            command: Some(index),
            rejected,
            queued,
        });
    }
    match dispatch_lending(spec, session, backend, args) {
        Err(error) => Prepared::Done(Executed {
            reply: error.into(),
            close: false,
            command: Some(index),
            // A handler's own error is a failed call; the table's checks
            // (arity, subcommand) reject it.
            rejected: resolve(spec, args).is_err(),
            queued: false,
        }),
        Ok(Action::Reply(reply)) => Prepared::Done(Executed {
            reply,
            close: false,
            command: Some(index),
            rejected: false,
            queued: false,
        }),
        Ok(action) => Prepared::Action {
            action,
            command: index,
        },
    }
}

/// Redis's `BUSY` text when a script has run on this node longer than
/// `busy-reply-threshold` and the command is not one Redis allows then
/// (`allow_busy`: AUTH, HELLO, MULTI, DISCARD, WATCH, UNWATCH, QUIT, RESET,
/// SCRIPT KILL, FUNCTION KILL|STATS, SHUTDOWN).
fn busy_refusal(env: &dyn Env, spec: &'static CommandSpec, args: &[Bytes]) -> Option<&'static str> {
    let busy = env.scripts()?.busy()?;
    let sub = args.get(1).and_then(|name| {
        spec.subcommands
            .iter()
            .find(|sub| name.eq_ignore_ascii_case(sub.name.as_bytes()))
    });
    let flags = sub.and_then(|sub| sub.flags).unwrap_or(spec.flags);
    (!flags.contains(Flags::ALLOW_BUSY)).then_some(busy)
}

/// Authentication and ACL checks, in Redis's order: a command that fails
/// the arity or subcommand check is left to report that; then NOAUTH for a
/// connection not authenticated (AUTH, HELLO and QUIT excepted); then the
/// user's permissions (NOPERM, recorded in the ACL LOG). A connection whose
/// user was deleted gets [`CommandError::UserDeleted`] and is closed (Redis
/// closes such connections when the user is deleted).
fn gate(
    env: &dyn Env,
    session: &Session,
    spec: &'static CommandSpec,
    args: &[Bytes],
) -> Result<(), CommandError> {
    if resolve(spec, args).is_err() {
        return Ok(());
    }
    let no_auth = matches!(spec.name, "auth" | "hello" | "quit");
    if !session.authenticated {
        return if no_auth {
            Ok(())
        } else {
            Err(CommandError::NoAuth)
        };
    }
    if no_auth {
        return Ok(());
    }
    let users = env.users();
    let Some(user) = users.get(&session.user) else {
        return Err(CommandError::UserDeleted);
    };
    let full_name = command_label(spec, args);
    crate::acl::check(user, spec, full_name, args).map_err(|denied| {
        if let Some(log) = env.acl_log() {
            log.record(session, &denied, args);
        }
        match denied {
            Denied::Command(name) => CommandError::NoPermCommand(name),
            Denied::Key(_) => CommandError::NoPermKey,
            Denied::Channel(_) => CommandError::NoPermChannel,
        }
    })
}

/// The reply for a write's outcome.
pub fn write_reply(result: Result<Output, RequestError>) -> Reply {
    match result {
        Ok(output) => output.into(),
        Err(error) => CommandError::from(error).into(),
    }
}

/// Carries out a handler's decision.
pub(crate) async fn run_action<B: Backend>(
    backend: &B,
    session: &mut Session,
    action: Action,
) -> (Reply, bool) {
    match action {
        Action::Reply(reply) => (reply, false),
        Action::Quit => (Reply::OK, true),
        Action::Write(op) => (write_reply(backend.write(op).await), false),
        // `execute` makes the operation before it gets here.
        Action::WriteArgs(_) => (
            Reply::error("ERR a write lost its arguments before it ran"),
            false,
        ),
        Action::Read(f) => {
            let result = if session.readonly {
                backend.read_local(f)
            } else {
                backend.read(f).await
            };
            match result {
                Ok(reply) => (reply, false),
                Err(error) => (CommandError::from(error).into(), false),
            }
        }
        Action::Watch(keys) => (transactions::watch(backend, session, keys).await, false),
        Action::Exec(name) => (transactions::exec(backend, session, name).await, false),
        Action::Block(block) => (super::blocking::block(backend, block).await, false),
        // Only a connection can hold a subscription (not EXEC's queue).
        Action::PubSub(_) => (
            Reply::error("ERR SUBSCRIBE and its forms are not supported inside MULTI in dkv"),
            false,
        ),
        Action::Wait(wait) => (
            super::commands::replication::run(backend, wait).await,
            false,
        ),
        Action::Sleep(pause) => {
            tokio::time::sleep(pause).await;
            (Reply::OK, false)
        }
        Action::Snapshot(ask) => (ask.run().await, false),
        Action::Migrate(migrate) => (
            super::commands::migrate::run(backend, *migrate).await,
            false,
        ),
        // A connection closes at once (`connection.rs`); here only EXEC's
        // queue could carry it, and SHUTDOWN is refused inside MULTI.
        Action::Shutdown => (
            Reply::error("ERR Command not allowed inside a transaction"),
            true,
        ),
        // MONITOR is `no-multi`: only a connection can watch.
        Action::Monitor => (
            Reply::error("ERR Command not allowed inside a transaction"),
            false,
        ),
    }
}

/// What carries out a request once its row is found.
#[derive(Clone, Copy)]
pub(crate) enum Resolved {
    /// A connection-level handler (the command's or its subcommand's).
    Handler(Handler),
    /// A key-space command, run by `kv` (see [`data_action`]).
    Data(&'static CommandSpec),
}

/// Arity and subcommand checks: what runs `args`.
pub(crate) fn resolve(
    spec: &'static CommandSpec,
    args: &[Bytes],
) -> Result<Resolved, CommandError> {
    if !spec.arity_ok(args.len()) {
        return Err(CommandError::WrongArity { name: spec.name });
    }
    let handler = match spec.kind {
        Kind::Server(handler) => handler,
        Kind::Read { .. } | Kind::Write { .. } => return Ok(Resolved::Data(spec)),
    };
    if spec.subcommands.is_empty() || args.len() < 2 {
        return Ok(Resolved::Handler(handler));
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
    Ok(Resolved::Handler(sub.handler))
}

/// Arity checks, subcommand routing, then the handler.
pub(crate) fn dispatch(
    spec: &'static CommandSpec,
    session: &mut Session,
    env: &dyn Env,
    args: &[Bytes],
) -> Result<Action, CommandError> {
    dispatch_lending(spec, session, env, args).map(|action| action.with_args(args))
}

/// [`dispatch`], except that a write made of the request's own arguments
/// comes back as [`Action::WriteArgs`] for the caller to make from them.
fn dispatch_lending(
    spec: &'static CommandSpec,
    session: &mut Session,
    env: &dyn Env,
    args: &[Bytes],
) -> Result<Action, CommandError> {
    match resolve(spec, args)? {
        Resolved::Handler(handler) => {
            let action = handler(session, env, args);
            super::tracking::command_done(session, spec);
            action
        }
        Resolved::Data(spec) => {
            let action = data_action(spec, env, session, args)?;
            // A script's redis.calls are checked against the caller at apply.
            let action = if crate::kv::runs_script(args) {
                match action.with_args(args) {
                    Action::Write(op) => Action::Write(Op::AsUser {
                        user: String::from_utf8_lossy(&session.user).into_owned(),
                        op: Box::new(op),
                    }),
                    other => other,
                }
            } else {
                action
            };
            let action = super::tracking::track(session, env, spec, args, action);
            super::tracking::command_done(session, spec);
            Ok(action)
        }
    }
}

/// A key-space command's check for `session`'s user: the row's `check`,
/// except that SORT and SORT_RO from a user who may not read every key also
/// refuse `BY`/`GET` patterns (Redis 7.0 refuses them in the parse: not
/// NOPERM, not in the ACL LOG, inside MULTI at EXEC). Run before proposing
/// or reading, so a refused pattern never reaches the data.
pub(crate) fn key_space_check(
    env: &dyn Env,
    session: &Session,
    spec: &CommandSpec,
    check: crate::cmd::Check,
    args: &[Bytes],
) -> Result<(), Output> {
    if matches!(spec.name, "sort" | "sort_ro") {
        let users = env.users();
        let restricted = users
            .get(&session.user)
            .is_some_and(|u| !crate::acl::unrestricted_key_access(u, KeyAccess::R));
        if restricted {
            return crate::kv::sort::check_restricted(args);
        }
    }
    check(args)
}

/// Whether a read script call may be served as a read: its body (if it
/// carries one) is in this node's cache (see `kv::scripting::read_body_sha`).
fn read_body_cached(env: &dyn Env, args: &[Bytes]) -> bool {
    crate::kv::scripting::read_body_sha(args).is_none_or(|sha| env.script_cached(&sha))
}

/// A script call served as a read, its `redis.call`s checked against the
/// connection's user.
fn script_read(session: &Session, db: u8, args: &[Bytes]) -> Action {
    let args = args.to_vec();
    let user = String::from_utf8_lossy(&session.user).into_owned();
    let seed: u64 = rand::random();
    Action::Read(Box::new(move |map, ctx| {
        Reply::from(map.run_read(
            db,
            |map, ctx, args| crate::kv::scripting::read_call(map, ctx, args, &user),
            &args,
            ctx.now_ms,
            seed,
        ))
    }))
}

/// A key-space command in database `db`: its check, then a write proposed
/// to the log (the checked arguments, run by apply) or a read run on the map
/// after the read barrier. Nothing that fails the check is proposed, except
/// a `denyoom` write while the map is over `maxmemory`: Redis answers OOM
/// before looking at the arguments, and only apply knows whether it must.
pub(crate) fn data_action(
    spec: &'static CommandSpec,
    env: &dyn Env,
    session: &Session,
    args: &[Bytes],
) -> Result<Action, CommandError> {
    let db = session.db;
    match spec.kind {
        Kind::Write { check, .. } => {
            if let Err(error) = key_space_check(env, session, spec, check, args) {
                // Redis refuses a `denyoom` command over maxmemory before it
                // looks at its arguments; nothing invalid is proposed either way.
                let info = spec.flags.contains(Flags::DENYOOM).then(|| env.kv_info());
                let over = info.is_some_and(|i| i.maxmemory > 0 && i.used_memory > i.maxmemory);
                return Err(if over {
                    CommandError::Data(crate::kv::OOM_TEXT.to_string())
                } else {
                    CommandError::from_output(error)
                });
            } else if (crate::kv::scripting::runs_as_read(spec.name, args)
                && read_body_cached(env, args))
                || (spec.name == "fcall" && env.function_reads(&args[1]))
            {
                // `#!lua flags=no-writes`: a read, like EVAL_RO.
                return Ok(script_read(session, db, args));
            } else if let Some(blocking) = spec.blocking.filter(|b| b.applies(args)) {
                return Ok(Action::Block(super::blocking::Block::new(
                    spec, blocking, db, args,
                )?));
            }
            Ok(Action::WriteArgs(Lent::of(spec, db, args)))
        }
        Kind::Read { check, run } => {
            key_space_check(env, session, spec, check, args).map_err(CommandError::from_output)?;
            if let Some(blocking) = spec.blocking.filter(|b| b.applies(args)) {
                // XREAD BLOCK: its attempts go through the log like a
                // blocking pop's (see `server::blocking`).
                return Ok(Action::Block(super::blocking::Block::new(
                    spec, blocking, db, args,
                )?));
            }
            if crate::kv::runs_script(args) {
                if !read_body_cached(env, args) {
                    return Ok(Action::Write(Op::Exec {
                        db,
                        args: args.to_vec(),
                    }));
                }
                return Ok(script_read(session, db, args));
            }
            let args = args.to_vec();
            // RANDOMKEY / HRANDFIELD: reads are local, so their randomness
            // may be too.
            let seed: u64 = rand::random();
            Ok(Action::Read(Box::new(move |map, ctx| {
                Reply::from(map.run_read(db, run, &args, ctx.now_ms, seed))
            })))
        }
        Kind::Server(_) => Err(CommandError::Data(format!(
            "ERR '{}' is not a key-space command",
            spec.name
        ))),
    }
}

/// The operation a key-space write's own arguments make, named before it
/// is made so that the connection holding the arguments can move them into
/// it ([`Lent::take`]) instead of copying each one: a copy's first clone of
/// an argument allocates a sharing header, and both copies were dropped
/// later, one of them on another thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lent {
    /// `SET key value` (no option) in db 0: [`Op::Set`], which apply decodes
    /// without copying the value.
    Set,
    /// `DEL key ...` in db 0: [`Op::Del`].
    Del,
    /// Anything else: [`Op::Exec`] of every argument, in this database.
    Exec(u8),
}

impl Lent {
    /// The log's compact forms of the hottest writes in db 0, `SET key
    /// value` and `DEL`; `Exec` for anything else.
    fn of(spec: &CommandSpec, db: u8, args: &[Bytes]) -> Lent {
        match (db, spec.name, args.len()) {
            (0, "set", 3) => Lent::Set,
            (0, "del", _) => Lent::Del,
            _ => Lent::Exec(db),
        }
    }

    /// The operation, made by moving the arguments out of `args`: what the
    /// operation does not carry (the command's name for `Set` and `Del`) is
    /// left there. [`Lent::give_back`] puts them back.
    pub fn take(self, args: &mut Vec<Bytes>) -> Op {
        match self {
            Lent::Set if args.len() == 3 => {
                let value = args.pop().unwrap_or_default();
                let key = args.pop().unwrap_or_default();
                Op::Set { key, value }
            }
            Lent::Del if !args.is_empty() => Op::Del {
                keys: args.split_off(1),
            },
            Lent::Set | Lent::Del => self.copy(args),
            Lent::Exec(db) => Op::Exec {
                db,
                args: std::mem::take(args),
            },
        }
    }

    /// The operation, made of copies of `args`.
    pub fn copy(self, args: &[Bytes]) -> Op {
        match (self, args) {
            (Lent::Set, [_, key, value]) => Op::Set {
                key: key.clone(),
                value: value.clone(),
            },
            (Lent::Del, [_, keys @ ..]) => Op::Del {
                keys: keys.to_vec(),
            },
            (Lent::Exec(db), _) => Op::Exec {
                db,
                args: args.to_vec(),
            },
            // `Lent::of` names these only for their shapes.
            (Lent::Set | Lent::Del, _) => Op::Exec {
                db: 0,
                args: args.to_vec(),
            },
        }
    }

    /// Puts back into `args` what [`Lent::take`] moved out of them into
    /// `op`, so that they read as the request did.
    pub fn give_back(self, op: Op, args: &mut Vec<Bytes>) {
        match op {
            Op::Set { key, value } if self == Lent::Set && args.len() == 1 => {
                args.push(key);
                args.push(value);
            }
            Op::Del { keys } if self == Lent::Del && args.len() == 1 => args.extend(keys),
            Op::Exec { args: taken, .. } if args.is_empty() => *args = taken,
            _ => {}
        }
    }
}

impl Action {
    /// This action with a [`Action::WriteArgs`] made into the write it
    /// names, of copies of `args`.
    pub fn with_args(self, args: &[Bytes]) -> Action {
        match self {
            Action::WriteArgs(lent) => Action::Write(lent.copy(args)),
            other => other,
        }
    }
}

/// Up to `max` bytes of `bytes`, as text.
pub(crate) fn preview(bytes: &[u8], max: usize) -> String {
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

/// Redis's strict integer parse.
pub(crate) fn parse_i64(arg: &[u8]) -> Option<i64> {
    crate::kv::parse_i64(arg)
}

// ---- metrics -------------------------------------------------------------

/// `dkv_commands_total{cmd,result}` handles, registered on a command's
/// first call (so `/metrics` lists only the commands this node has run), and
/// the node's Redis-style statistics ([`super::stats`]).
#[derive(Clone)]
pub struct CommandCounters {
    /// `[ok, error]` per row of [`COMMANDS`], once the command first ran.
    per_command: Arc<[std::sync::OnceLock<[metrics::Counter; 2]>]>,
    /// Unknown commands (`cmd="unknown"`); their names are not labels, so a
    /// client cannot create unbounded series.
    unknown: [metrics::Counter; 2],
    /// INFO commandstats and the rest.
    stats: Arc<super::stats::Stats>,
}

/// The `[ok, error]` counters of command `name`.
fn counter_pair(name: &'static str) -> [metrics::Counter; 2] {
    [
        crate::metrics::Metrics::command(name, "ok"),
        crate::metrics::Metrics::command(name, "error"),
    ]
}

impl CommandCounters {
    /// Registers the counters of every command.
    pub fn register() -> CommandCounters {
        CommandCounters {
            per_command: COMMANDS
                .iter()
                .map(|_| std::sync::OnceLock::new())
                .collect(),
            unknown: counter_pair("unknown"),
            stats: Arc::default(),
        }
    }

    /// The counters, recording into `stats` (shared with whoever reads it).
    pub fn with_stats(mut self, stats: Arc<super::stats::Stats>) -> CommandCounters {
        self.stats = stats;
        self
    }

    /// The statistics INFO, SLOWLOG, LATENCY and MONITOR read.
    pub fn stats(&self) -> &Arc<super::stats::Stats> {
        &self.stats
    }

    /// Counts one executed request in the Prometheus counters.
    pub fn record(&self, executed: &Executed) {
        let pair = executed
            .command
            .and_then(|i| {
                let spec = COMMANDS.get(i)?;
                Some(
                    self.per_command
                        .get(i)?
                        .get_or_init(|| counter_pair(spec.name)),
                )
            })
            .unwrap_or(&self.unknown);
        pair[usize::from(executed.reply.is_error())].increment(1);
    }

    /// Counts one finished request everywhere: the Prometheus counters and
    /// the node's statistics (which time it from `request.started`).
    pub fn finish(&self, executed: &Executed, request: &super::stats::Request, session: &Session) {
        self.finish_timed(executed, request, request.elapsed_usec(), false, session);
    }

    /// [`CommandCounters::finish`] of a request that took `usec`, whose
    /// slow-log entry is `superseded` by a later request of its group
    /// ([`super::stats::Stats::superseded_in_slow_log`]).
    pub fn finish_timed(
        &self,
        executed: &Executed,
        request: &super::stats::Request,
        usec: u64,
        superseded: bool,
        session: &Session,
    ) {
        self.record(executed);
        if executed.queued {
            return; // counted by EXEC when it runs
        }
        self.stats.record(
            &super::stats::Finished {
                command: executed.command,
                args: &request.args,
                reply: &executed.reply,
                rejected: executed.rejected,
                usec,
                superseded,
            },
            session,
        );
    }
}

/// A backend without Raft for tests: writes apply directly to a local map.
#[cfg(test)]
pub(crate) mod fake {
    /// Runs one space-separated request line on `backend` and returns its
    /// reply (the fake never waits, so it completes at once).
    pub(crate) fn run_line(backend: &FakeBackend, session: &mut Session, line: &str) -> Reply {
        let args: Vec<Bytes> = line
            .split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect();
        futures_util::FutureExt::now_or_never(execute(backend, session, &args))
            .expect("the fake backend never waits")
            .reply
    }

    use std::sync::Mutex;

    use super::*;
    use crate::kv::Command;
    use crate::raft::{LogIndex, NodeId, Role, Term};

    pub(crate) struct FakeBackend {
        pub db: Mutex<Db>,
        pub facts: ServerFacts,
        pub role: Role,
        pub error: Option<RequestError>,
        pub now_ms: u64,
        /// `write_batch` calls so far.
        pub batches: Mutex<usize>,
        /// Every operation proposed so far, in order.
        pub proposed: Mutex<Vec<Op>>,
        /// Ops proposed so far (each `write`, batched or not).
        pub proposals: Mutex<usize>,
        /// Blocked clients, woken after each write as a node does.
        pub key_waits: Arc<crate::node::wakeups::KeyWaits>,
        /// Statistics, as a node keeps them.
        pub stats: Arc<crate::server::stats::Stats>,
        /// Errors the next writes answer, one each, in order (the write is
        /// proposed but not applied), before `error`.
        pub next_write_errors: Mutex<std::collections::VecDeque<RequestError>>,
        /// Every FAILOVER started: the target and the wait. The first one
        /// runs for ever.
        pub failovers: Mutex<Vec<(Option<NodeId>, std::time::Duration)>>,
        /// Every snapshot asked for (`schedule` each time). The first one
        /// is written at once and stays "being written" for the later ones.
        pub snapshots: Mutex<Vec<bool>>,
        /// Every SHUTDOWN accepted (only the first is).
        pub shutdowns: Mutex<Vec<crate::server::commands::persistence::Shutdown>>,
    }

    impl FakeBackend {
        pub fn new() -> FakeBackend {
            FakeBackend {
                db: Mutex::new(Db::new()),
                facts: ServerFacts::new(6379, None, None, 100),
                role: Role::Leader,
                error: None,
                now_ms: 1_000_000,
                batches: Mutex::new(0),
                proposed: Mutex::new(Vec::new()),
                proposals: Mutex::new(0),
                key_waits: Arc::default(),
                stats: Arc::default(),
                next_write_errors: Mutex::default(),
                failovers: Mutex::default(),
                snapshots: Mutex::default(),
                shutdowns: Mutex::default(),
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
                last_leader: Some(NodeId(1)),
                leader_resp_addr: Some("127.0.0.1:6379".into()),
                commit_index: LogIndex(7),
                last_applied: LogIndex(7),
                last_log_index: LogIndex(8),
                loading: false,
                leader_changes: 1,
                snapshot_index: LogIndex(0),
                voters: 3,
                followers: if self.role == Role::Leader {
                    [(2, 8), (3, 5)]
                        .into_iter()
                        .map(|(id, at)| crate::node::FollowerStatus {
                            id: NodeId(id),
                            match_index: LogIndex(at),
                            last_heard_secs: 0,
                            resp_addr: Some(([127, 0, 0, 1], 6380 + id as u16).into()),
                        })
                        .collect()
                } else {
                    Vec::new()
                },
                learners: Vec::new(),
            }
        }
        fn kv_info(&self) -> KvInfo {
            self.db.lock().expect("not poisoned").info(self.now_ms)
        }
        fn connected_clients(&self) -> usize {
            1
        }
        fn users(&self) -> Arc<Users> {
            self.db.lock().expect("not poisoned").users()
        }
        fn key_waits(&self) -> Option<&Arc<crate::node::wakeups::KeyWaits>> {
            Some(&self.key_waits)
        }
        fn stats(&self) -> Option<&Arc<crate::server::stats::Stats>> {
            Some(&self.stats)
        }
        fn start_failover(&self, to: Option<NodeId>, wait: std::time::Duration) -> bool {
            let mut started = self.failovers.lock().expect("not poisoned");
            started.push((to, wait));
            started.len() == 1
        }
        fn failover_running(&self) -> bool {
            !self.failovers.lock().expect("not poisoned").is_empty()
        }
        fn snapshot_now(
            &self,
            schedule: bool,
        ) -> Option<crate::server::commands::persistence::SnapshotJob> {
            use crate::node::SnapshotStart;
            let mut asked = self.snapshots.lock().expect("not poisoned");
            asked.push(schedule);
            let start = if asked.len() == 1 {
                let (done, heard) = tokio::sync::oneshot::channel();
                let _ = done.send(());
                SnapshotStart::Started(heard)
            } else {
                SnapshotStart::InProgress {
                    scheduled: schedule,
                }
            };
            Some(Box::pin(std::future::ready(Some(start))))
        }
        fn request_shutdown(&self, how: crate::server::commands::persistence::Shutdown) -> bool {
            let mut asked = self.shutdowns.lock().expect("not poisoned");
            asked.push(how);
            asked.len() == 1
        }
        fn reset_stats(&self) {
            self.stats.reset();
            self.db.lock().expect("not poisoned").reset_read_stats();
        }
    }

    impl Backend for FakeBackend {
        fn write(&self, op: Op) -> impl Future<Output = Result<Output, RequestError>> + Send {
            self.proposed.lock().expect("not poisoned").push(op.clone());
            *self.proposals.lock().expect("not poisoned") += 1;
            let once = self
                .next_write_errors
                .lock()
                .expect("not poisoned")
                .pop_front();
            let result = match once.as_ref().or(self.error.as_ref()) {
                Some(error) => Err(error.clone()),
                None => {
                    let (output, touched) = {
                        let mut db = self.db.lock().expect("not poisoned");
                        db.track_touched(self.key_waits.any());
                        let output = db.apply(&Command {
                            ts_ms: self.now_ms,
                            op,
                        });
                        (output, db.take_touched())
                    };
                    self.key_waits.touched(&touched);
                    Ok(output)
                }
            };
            std::future::ready(result)
        }
        fn write_batch(
            &self,
            ops: Arc<Vec<Op>>,
        ) -> impl Future<Output = Vec<Result<Output, RequestError>>> + Send {
            *self.batches.lock().expect("not poisoned") += 1;
            let results = ops
                .iter()
                .cloned()
                .map(|op| futures_util::FutureExt::now_or_never(self.write(op)))
                .map(|r| r.expect("the fake's writes are ready at once"))
                .collect();
            std::future::ready(results)
        }
        fn read<R: Send + 'static>(
            &self,
            f: ReadWith<R>,
        ) -> impl Future<Output = Result<R, RequestError>> + Send {
            std::future::ready(self.read_local(f))
        }
        fn read_local<R>(&self, f: impl FnOnce(&Db, ReadCtx) -> R) -> Result<R, RequestError> {
            match &self.error {
                Some(error) => Err(error.clone()),
                None => Ok(f(
                    &self.db.lock().expect("not poisoned"),
                    ReadCtx {
                        now_ms: self.now_ms,
                    },
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests;
