//! Connection commands: PING, ECHO, QUIT, RESET, HELLO, AUTH, SELECT,
//! READONLY/READWRITE and CLIENT. They change the session only, never the map
//! (CLIENT LIST / KILL see other connections through the registry in
//! [`super::clients`]).

use std::time::Instant;

use bytes::Bytes;

use super::clients::ClientView;

use crate::kv::DATABASES;
use crate::server::command::{
    parse_i64, preview, unknown_command, Action, CommandError, Env, Session,
};
use crate::server::info;
use crate::server::reply::{Protocol, Reply};

pub fn ping(session: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    if session.protocol == Protocol::Resp2 && session.subscribed() && args.len() <= 2 {
        // Subscribed mode (RESP2): `pong` and the argument, as a message-like
        // array (Redis 7.0.15: `*2 $4 pong $0 ""` without one).
        let echo = args.get(1).cloned().unwrap_or_default();
        return Ok(Action::Reply(Reply::Array(vec![
            Reply::Bulk(Bytes::from_static(b"pong")),
            Reply::Bulk(echo),
        ])));
    }
    match args.len() {
        1 => Ok(Action::Reply(Reply::Simple("PONG"))),
        2 => Ok(Action::Reply(Reply::Bulk(args[1].clone()))),
        _ => Err(CommandError::WrongArity { name: "ping" }),
    }
}

pub fn echo(_: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    Ok(Action::Reply(Reply::Bulk(args[1].clone())))
}

pub fn quit(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    Ok(Action::Quit)
}

/// Authenticates `session` as `user` with `password` (AUTH, HELLO AUTH);
/// a failure is recorded in the ACL LOG and leaves the session as it was.
pub fn authenticate(
    session: &mut Session,
    env: &dyn Env,
    command: &Bytes,
    user: &Bytes,
    password: &[u8],
) -> Result<(), CommandError> {
    let accepted = env.users().get(user).is_some_and(|u| u.accepts(password));
    if !accepted {
        if let Some(log) = env.acl_log() {
            log.record_auth(session, command.clone(), user.clone());
        }
        return Err(CommandError::WrongPass);
    }
    session.user = user.clone();
    session.authenticated = true;
    Ok(())
}

/// `AUTH password` (the default user) or `AUTH user password`.
pub fn auth(session: &mut Session, env: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    let (user, password) = match args.len() {
        2 => {
            let default_nopass = env.users().get(b"default").is_some_and(|u| u.nopass);
            if default_nopass {
                return Err(CommandError::AuthWithoutPassword);
            }
            (Bytes::from_static(b"default"), &args[1])
        }
        3 => (args[1].clone(), &args[2]),
        _ => return Err(CommandError::Syntax),
    };
    authenticate(session, env, &args[0], &user, password)?;
    Ok(Action::Reply(Reply::OK))
}

/// Valid client names and library infos: printable ASCII without spaces.
pub fn is_valid_name(name: &[u8]) -> bool {
    name.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

pub fn hello(session: &mut Session, env: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
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
            credentials = Some((args[j + 1].clone(), args[j + 2].clone()));
            j += 3;
        } else if option.eq_ignore_ascii_case(b"SETNAME") && more >= 1 {
            name = Some(args[j + 1].clone());
            j += 2;
        } else {
            return Err(CommandError::HelloOption(preview(option, 128)));
        }
    }
    if let Some((user, password)) = credentials {
        authenticate(session, env, &args[0], &user, &password)?;
    }
    if let Some(name) = name {
        set_client_name(session, name)?;
    }
    if !session.authenticated {
        return Err(CommandError::HelloNoAuth);
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
        (Reply::bulk_str("mode"), Reply::bulk_str("cluster")),
        (
            Reply::bulk_str("role"),
            Reply::bulk_str(info::redis_role(status.role)),
        ),
        (Reply::bulk_str("modules"), Reply::Array(vec![])),
    ])))
}

pub fn select(session: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    session.db = parse_db_index(&args[1])?;
    Ok(Action::Reply(Reply::OK))
}

/// Redis's SELECT checks: an `int`, then the range.
pub fn parse_db_index(arg: &[u8]) -> Result<u8, CommandError> {
    match parse_i64(arg) {
        Some(n) if i32::try_from(n).is_ok() => u8::try_from(n)
            .ok()
            .filter(|&i| usize::from(i) < DATABASES)
            .ok_or(CommandError::DbIndexOutOfRange),
        _ => Err(CommandError::NotInteger),
    }
}

pub fn reset(session: &mut Session, env: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    session.reset_user(&env.users());
    session.discard_transaction();
    session.db = 0;
    session.protocol = Protocol::Resp2;
    session.name = None;
    session.readonly = false;
    crate::server::tracking::reset(session, env);
    // The connection dropped the subscriptions before this ran.
    session.subscriptions = 0;
    session.pattern_subscriptions = 0;
    session.shard_subscriptions = 0;
    Ok(Action::Reply(Reply::Simple("RESET")))
}

pub fn readonly(session: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    session.readonly = true;
    Ok(Action::Reply(Reply::OK))
}

pub fn readwrite(session: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    session.readonly = false;
    Ok(Action::Reply(Reply::OK))
}

pub fn missing_subcommand(
    _: &mut Session,
    _: &dyn Env,
    args: &[Bytes],
) -> Result<Action, CommandError> {
    // Containers with arity -2 never get here (the arity check comes first).
    Err(unknown_command(args))
}

// ---- CLIENT --------------------------------------------------------------

pub fn set_client_name(session: &mut Session, name: Bytes) -> Result<(), CommandError> {
    if !is_valid_name(&name) {
        return Err(CommandError::InvalidClientName);
    }
    session.name = if name.is_empty() { None } else { Some(name) };
    Ok(())
}

pub fn client_setname(
    session: &mut Session,
    _: &dyn Env,
    args: &[Bytes],
) -> Result<Action, CommandError> {
    set_client_name(session, args[2].clone())?;
    Ok(Action::Reply(Reply::OK))
}

pub fn client_getname(
    session: &mut Session,
    _: &dyn Env,
    _: &[Bytes],
) -> Result<Action, CommandError> {
    Ok(Action::Reply(
        session.name.clone().map_or(Reply::Null, Reply::Bulk),
    ))
}

pub fn client_setinfo(
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

pub fn client_id(session: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    Ok(Action::Reply(Reply::Integer(session.id as i64)))
}

/// This connection's view as it is now.
fn own_view(session: &Session) -> ClientView {
    let fd = session.client.as_ref().map_or(-1, |c| c.fd());
    ClientView::of(session, fd)
}

/// This connection's `CLIENT INFO` / `CLIENT LIST` line.
fn client_line(session: &Session) -> String {
    own_view(session).line(Instant::now())
}

pub fn client_info(
    session: &mut Session,
    _: &dyn Env,
    _: &[Bytes],
) -> Result<Action, CommandError> {
    Ok(Action::Reply(Reply::Verbatim(client_line(session))))
}

/// A `TYPE` argument: Redis's client types. A dkv client is `pubsub` while
/// it holds a subscription (Redis's `P` flag) and `normal` otherwise; none
/// is a `master` or `replica` (None).
fn client_type(name: &[u8]) -> Result<Option<bool>, CommandError> {
    if name.eq_ignore_ascii_case(b"normal") {
        Ok(Some(false))
    } else if name.eq_ignore_ascii_case(b"pubsub") {
        Ok(Some(true))
    } else if ["master", "replica", "slave"]
        .iter()
        .any(|t| name.eq_ignore_ascii_case(t.as_bytes()))
    {
        Ok(None)
    } else {
        Err(CommandError::UnknownClientType(preview(name, 128)))
    }
}

/// True when `view` is of the `TYPE` argument's type (`Some(pubsub)`).
fn type_matches(view: &ClientView, wanted: Option<bool>) -> bool {
    wanted == Some(view.pubsub())
}

/// `CLIENT LIST [TYPE type] [ID id ...]`: every open connection of this node
/// (this connection's line is current; the others' are as of their last
/// command).
pub fn client_list(
    session: &mut Session,
    env: &dyn Env,
    args: &[Bytes],
) -> Result<Action, CommandError> {
    let mut ids: Option<Vec<u64>> = None;
    let mut kind = None;
    if args.len() > 2 {
        if args.len() == 4 && args[2].eq_ignore_ascii_case(b"type") {
            kind = Some(client_type(&args[3])?);
        } else if args.len() >= 4 && args[2].eq_ignore_ascii_case(b"id") {
            let mut wanted = Vec::new();
            for id in &args[3..] {
                match parse_i64(id) {
                    // Ids are positive: zero and negatives match nobody.
                    Some(n) => wanted.extend(u64::try_from(n).ok()),
                    None => return Err(CommandError::InvalidClientId),
                }
            }
            ids = Some(wanted);
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let selected = |view: &ClientView| {
        kind.is_none_or(|wanted| type_matches(view, wanted))
            && ids.as_ref().is_none_or(|ids| ids.contains(&view.id))
    };
    let now = Instant::now();
    let mut text = String::new();
    match env.clients() {
        Some(registry) => {
            for view in registry.views() {
                // This connection's line is current.
                let view = if view.id == session.id {
                    own_view(session)
                } else {
                    view
                };
                if selected(&view) {
                    text.push_str(&view.line(now));
                }
            }
        }
        None => {
            let view = own_view(session);
            if selected(&view) {
                text.push_str(&view.line(now));
            }
        }
    }
    Ok(Action::Reply(Reply::Verbatim(text)))
}

/// A `CLIENT KILL` filter.
#[derive(Default)]
struct KillFilter {
    id: Option<u64>,
    user: Option<Bytes>,
    addr: Option<Bytes>,
    laddr: Option<Bytes>,
    /// `TYPE`: pubsub (true) or normal (false); None: master or replica,
    /// which no dkv client is. The last one given counts, as in Redis.
    kind: Option<Option<bool>>,
    skip_me: bool,
}

impl KillFilter {
    fn matches(&self, view: &ClientView, me: u64) -> bool {
        self.kind.is_none_or(|wanted| type_matches(view, wanted))
            && !(self.skip_me && view.id == me)
            && self.id.is_none_or(|id| id == view.id)
            && self.user.as_ref().is_none_or(|u| *u == view.user)
            && self
                .addr
                .as_ref()
                .is_none_or(|a| a[..] == *view.addr().as_bytes())
            && self
                .laddr
                .as_ref()
                .is_none_or(|a| a[..] == *view.laddr().as_bytes())
    }
}

/// Redis 7.0's `CLIENT KILL <filter> <value> ...` arguments.
fn parse_kill_filter(env: &dyn Env, args: &[Bytes]) -> Result<KillFilter, CommandError> {
    let mut filter = KillFilter {
        skip_me: true,
        ..KillFilter::default()
    };
    let mut pairs = args[2..].chunks(2);
    for pair in pairs.by_ref() {
        let [name, value] = pair else {
            return Err(CommandError::Syntax);
        };
        if name.eq_ignore_ascii_case(b"id") {
            match parse_i64(value) {
                Some(n) if n > 0 => filter.id = Some(n as u64),
                _ => return Err(CommandError::ClientIdNotPositive),
            }
        } else if name.eq_ignore_ascii_case(b"type") {
            filter.kind = Some(client_type(value)?);
        } else if name.eq_ignore_ascii_case(b"user") {
            if env.users().get(value).is_none() {
                return Err(CommandError::NoSuchUser(preview(value, 128)));
            }
            filter.user = Some(value.clone());
        } else if name.eq_ignore_ascii_case(b"addr") {
            filter.addr = Some(value.clone());
        } else if name.eq_ignore_ascii_case(b"laddr") {
            filter.laddr = Some(value.clone());
        } else if name.eq_ignore_ascii_case(b"skipme") {
            if value.eq_ignore_ascii_case(b"yes") {
                filter.skip_me = true;
            } else if value.eq_ignore_ascii_case(b"no") {
                filter.skip_me = false;
            } else {
                return Err(CommandError::Syntax);
            }
        } else {
            return Err(CommandError::Syntax);
        }
    }
    Ok(filter)
}

/// `CLIENT KILL ip:port` (old form: `+OK`, or `-ERR No such client`) or
/// `CLIENT KILL <filter> <value> ...` (the number killed). Killed
/// connections close after the batch they are executing; this connection,
/// when it kills itself, after this reply.
pub fn client_kill(
    session: &mut Session,
    env: &dyn Env,
    args: &[Bytes],
) -> Result<Action, CommandError> {
    let old_form = args.len() == 3;
    let filter = if old_form {
        KillFilter {
            addr: Some(args[2].clone()),
            skip_me: false,
            ..KillFilter::default()
        }
    } else {
        parse_kill_filter(env, args)?
    };
    let me = session.id;
    let (killed, killed_me) = match env.clients() {
        Some(registry) => {
            let killed_me = filter.matches(&ClientView::of(session, -1), me);
            (registry.kill(|view| filter.matches(view, me)), killed_me)
        }
        None => {
            let mine = filter.matches(&ClientView::of(session, -1), me);
            (usize::from(mine), mine)
        }
    };
    match (old_form, killed) {
        (true, 0) => Err(CommandError::NoSuchClient),
        // Without a registry, closing this connection is up to the caller.
        (true, _) if killed_me && env.clients().is_none() => Ok(Action::Quit),
        (true, _) => Ok(Action::Reply(Reply::OK)),
        (false, n) => Ok(Action::Reply(Reply::Integer(n as i64))),
    }
}

pub fn help(lines: &[&'static str]) -> Result<Action, CommandError> {
    Ok(Action::Reply(Reply::Array(
        lines.iter().map(|l| Reply::Simple(l)).collect(),
    )))
}

pub fn client_help(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    help(&[
        "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CACHING (YES|NO)",
        "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
        "GETREDIR",
        "    Return the client ID we are redirecting to when tracking is enabled.",
        "GETNAME",
        "    Return the name of the current connection.",
        "ID",
        "    Return the ID of the current connection.",
        "INFO",
        "    Return information about the current client connection.",
        "KILL <ip:port>",
        "    Kill connection made from <ip:port>.",
        "KILL <option> <value> [<option> <value> [...]]",
        "    Kill connections. Options are: ID <client-id>, TYPE <normal|master|replica|pubsub>,",
        "    USER <username>, ADDR <ip:port>, LADDR <ip:port>, SKIPME (YES|NO) (default YES).",
        "LIST [TYPE <type>] [ID <id> [<id> ...]]",
        "    Return information about client connections.",
        "SETINFO <option> <value>",
        "    Set client meta attr. Options are: LIB-NAME, LIB-VER.",
        "SETNAME <name>",
        "    Assign the name <name> to the current connection.",
        "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
        "         [OPTIN] [OPTOUT] [NOLOOP]",
        "    Control server assisted client side caching.",
        "TRACKINGINFO",
        "    Report tracking status for the current connection.",
        "HELP",
        "    Print this help.",
    ])
}
