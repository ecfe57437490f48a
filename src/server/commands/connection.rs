//! Connection commands: PING, ECHO, QUIT, RESET, HELLO, AUTH, SELECT,
//! READONLY/READWRITE and CLIENT. They change the session only, never the map.

use std::net::SocketAddr;

use bytes::Bytes;

use crate::kv::DATABASES;
use crate::server::command::{
    parse_i64, preview, unknown_command, Action, CommandError, Env, Session,
};
use crate::server::info;
use crate::server::reply::{Protocol, Reply};

pub fn ping(_: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
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

/// No password is configured: the `default` user accepts any password, as in
/// Redis with `nopass`; other users do not exist.
pub fn check_credentials(user: &[u8]) -> Result<(), CommandError> {
    if user == b"default" {
        Ok(())
    } else {
        Err(CommandError::WrongPass)
    }
}

pub fn auth(_: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    match args.len() {
        2 => Err(CommandError::AuthWithoutPassword),
        3 => check_credentials(&args[1]).map(|()| Action::Reply(Reply::OK)),
        _ => Err(CommandError::Syntax),
    }
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

pub fn reset(session: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    session.discard_transaction();
    session.db = 0;
    session.protocol = Protocol::Resp2;
    session.name = None;
    session.readonly = false;
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

/// This connection's `CLIENT INFO` / `CLIENT LIST` line.
fn client_line(session: &Session) -> String {
    let text = |v: &Option<Bytes>| {
        v.as_ref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    };
    let addr = |a: Option<SocketAddr>| a.map(|a| a.to_string()).unwrap_or_default();
    let flags = match (&session.multi, session.readonly) {
        (Some(_), _) => "x",
        (None, true) => "r",
        (None, false) => "N",
    };
    format!(
        "id={} addr={} laddr={} fd=-1 name={} age={} idle=0 flags={} db={} sub=0 psub=0 ssub=0 multi={} watch={} cmd={} user=default lib-name={} lib-ver={} resp={}\n",
        session.id,
        addr(session.peer),
        addr(session.local),
        text(&session.name),
        session.connected_at.elapsed().as_secs(),
        flags,
        session.db,
        session.multi.as_ref().map_or(-1, |q| q.len() as i64),
        session.watched.len(),
        session.last_command,
        text(&session.lib_name),
        text(&session.lib_ver),
        session.protocol.version(),
    )
}

pub fn client_info(
    session: &mut Session,
    _: &dyn Env,
    _: &[Bytes],
) -> Result<Action, CommandError> {
    Ok(Action::Reply(Reply::Verbatim(client_line(session))))
}

/// Only this connection is listed: connections are not registered with each
/// other (each is one task), so dkv reports what it knows.
pub fn client_list(
    session: &mut Session,
    _: &dyn Env,
    args: &[Bytes],
) -> Result<Action, CommandError> {
    if args.len() > 2 {
        let by_id = args.len() >= 4 && args[2].eq_ignore_ascii_case(b"id");
        let by_type = args.len() == 4 && args[2].eq_ignore_ascii_case(b"type");
        if !(by_id || by_type) {
            return Err(CommandError::Syntax);
        }
        if by_id {
            let mut mine = false;
            for id in &args[3..] {
                match parse_i64(id) {
                    Some(n) if n > 0 => mine |= n as u64 == session.id,
                    _ => return Err(CommandError::NotInteger),
                }
            }
            if !mine {
                return Ok(Action::Reply(Reply::Verbatim(String::new())));
            }
        }
    }
    Ok(Action::Reply(Reply::Verbatim(client_line(session))))
}

/// `CLIENT KILL addr` (old form) or `CLIENT KILL <filter> <value> ...`. Only
/// this connection is known (see [`client_list`]); with `SKIPME yes` (the
/// default) nothing matches.
pub fn client_kill(
    session: &mut Session,
    _: &dyn Env,
    args: &[Bytes],
) -> Result<Action, CommandError> {
    let own_addr = session.peer.map(|a| a.to_string()).unwrap_or_default();
    if args.len() == 3 {
        return if args[2][..] == *own_addr.as_bytes() {
            Ok(Action::Quit)
        } else {
            Err(CommandError::NoSuchClient)
        };
    }
    if args.len() % 2 == 1 {
        return Err(CommandError::Syntax);
    }
    let mut skip_me = true;
    let mut matches = true;
    for pair in args[2..].chunks(2) {
        let (filter, value) = (&pair[0], &pair[1]);
        if filter.eq_ignore_ascii_case(b"id") {
            match parse_i64(value) {
                Some(n) if n > 0 => matches &= n as u64 == session.id,
                _ => return Err(CommandError::Syntax),
            }
        } else if filter.eq_ignore_ascii_case(b"addr") {
            matches &= value[..] == *own_addr.as_bytes();
        } else if filter.eq_ignore_ascii_case(b"skipme") {
            if value.eq_ignore_ascii_case(b"yes") {
                skip_me = true;
            } else if value.eq_ignore_ascii_case(b"no") {
                skip_me = false;
            } else {
                return Err(CommandError::Syntax);
            }
        } else if filter.eq_ignore_ascii_case(b"laddr")
            || filter.eq_ignore_ascii_case(b"user")
            || filter.eq_ignore_ascii_case(b"type")
            || filter.eq_ignore_ascii_case(b"maxage")
        {
            matches = false;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    if matches && !skip_me {
        Ok(Action::Quit)
    } else {
        Ok(Action::Reply(Reply::Integer(0)))
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
        "GETNAME",
        "    Return the name of the current connection.",
        "ID",
        "    Return the ID of the current connection.",
        "INFO",
        "    Return information about the current client connection.",
        "KILL <ip:port> | <option> <value> [<option> <value> [...]]",
        "    Kill connections (dkv knows only the current one).",
        "LIST [TYPE <type>] [ID <id> [<id> ...]]",
        "    Return information about client connections.",
        "SETINFO <option> <value>",
        "    Set client meta attr. Options are: LIB-NAME, LIB-VER.",
        "SETNAME <name>",
        "    Assign the name <name> to the current connection.",
        "HELP",
        "    Print this help.",
    ])
}
