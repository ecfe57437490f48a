//! Client-side caching on a connection: `CLIENT TRACKING`, `CLIENT
//! CACHING`, `CLIENT GETREDIR`, `CLIENT TRACKINGINFO`, what a tracking
//! client's reads and writes carry, and the invalidation frames' wire form.
//!
//! The node keeps the tracking table (`node/tracking.rs`); the session keeps
//! the client's mode for its own decisions (which reads to remember, which
//! writes carry the writer for NOLOOP) and for `CLIENT INFO`/`LIST`.
//! Replies and error texts are Redis 7.0.15's (`networking.c`,
//! `tracking.c`).

use std::sync::atomic::Ordering;

use bytes::{BufMut, Bytes, BytesMut};

use super::command::{parse_i64, Action, CommandError, Env, Session};
use super::reply::{Protocol, Reply};
use crate::cmd::{CommandSpec, Flags};
use crate::kv::Op;
use crate::node::tracking::{Mode, Push};

/// `CLIENT TRACKING ON|OFF [REDIRECT id] [PREFIX p]... [BCAST] [OPTIN]
/// [OPTOUT] [NOLOOP]`: options are parsed first (and their errors given
/// in order, as Redis does), then checked against each other and the
/// client's current mode.
pub fn client_tracking(
    session: &mut Session,
    env: &dyn Env,
    args: &[Bytes],
) -> Result<Action, CommandError> {
    let hub = env.tracking();
    let mut mode = Mode::default();
    let mut prefixes: Vec<Bytes> = Vec::new();
    let mut at = 3;
    while at < args.len() {
        let option = &args[at];
        let more = at + 1 < args.len();
        if option.eq_ignore_ascii_case(b"redirect") && more {
            at += 1;
            if mode.redirect != 0 {
                return Err(CommandError::err(
                    "A client can only redirect to a single other client",
                ));
            }
            let id = parse_i64(&args[at]).ok_or(CommandError::NotInteger)?;
            let exists = u64::try_from(id)
                .ok()
                .filter(|&id| id != 0)
                .is_some_and(|id| hub.is_some_and(|h| h.exists(id)) || id == session.id);
            if !exists {
                return Err(CommandError::err(
                    "The client ID you want redirect to does not exist",
                ));
            }
            mode.redirect = id as u64;
        } else if option.eq_ignore_ascii_case(b"bcast") {
            mode.bcast = true;
        } else if option.eq_ignore_ascii_case(b"optin") {
            mode.optin = true;
        } else if option.eq_ignore_ascii_case(b"optout") {
            mode.optout = true;
        } else if option.eq_ignore_ascii_case(b"noloop") {
            mode.noloop = true;
        } else if option.eq_ignore_ascii_case(b"prefix") && more {
            at += 1;
            prefixes.push(args[at].clone());
        } else {
            return Err(CommandError::Syntax);
        }
        at += 1;
    }
    if args[2].eq_ignore_ascii_case(b"off") {
        if session.tracking.take().is_some() {
            if let Some(hub) = hub {
                hub.disable(session.id);
            }
        }
        session.caching = false;
        return Ok(Action::Reply(Reply::OK));
    }
    if !args[2].eq_ignore_ascii_case(b"on") {
        return Err(CommandError::Syntax);
    }
    if !mode.bcast && !prefixes.is_empty() {
        return Err(CommandError::err(
            "PREFIX option requires BCAST mode to be enabled",
        ));
    }
    let current = session.tracking.as_ref();
    if current.is_some_and(|c| c.bcast != mode.bcast) {
        return Err(CommandError::err(
            "You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.",
        ));
    }
    if mode.bcast && (mode.optin || mode.optout) {
        return Err(CommandError::err(
            "OPTIN and OPTOUT are not compatible with BCAST",
        ));
    }
    if mode.optin && mode.optout {
        return Err(CommandError::err(
            "You can't specify both OPTIN mode and OPTOUT mode",
        ));
    }
    if current.is_some_and(|c| (mode.optin && c.optout) || (mode.optout && c.optin)) {
        return Err(CommandError::err(
            "You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.",
        ));
    }
    if mode.bcast {
        let existing = current.map(|c| c.prefixes.clone()).unwrap_or_default();
        check_prefixes(&existing, &prefixes)?;
        mode.prefixes = existing;
        if prefixes.is_empty() {
            mode.prefixes.insert(Bytes::new());
        }
        mode.prefixes.extend(prefixes);
    }
    mode.resp3 = session.protocol == Protocol::Resp3;
    if let Some(hub) = hub {
        hub.enable(session.id, &mode);
    }
    session.tracking = Some(mode);
    Ok(Action::Reply(Reply::OK))
}

/// Redis's `checkPrefixCollisionsOrReply`: no new prefix may be a prefix of
/// (or have as prefix) an existing one or another new one.
fn check_prefixes(
    existing: &std::collections::BTreeSet<Bytes>,
    new: &[Bytes],
) -> Result<(), CommandError> {
    let overlaps = |a: &[u8], b: &[u8]| {
        let n = a.len().min(b.len());
        a[..n] == b[..n]
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    for (i, prefix) in new.iter().enumerate() {
        if let Some(old) = existing.iter().find(|old| overlaps(old, prefix)) {
            return Err(CommandError::err(&format!(
                "Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                text(prefix),
                text(old)
            )));
        }
        if let Some(other) = new[i + 1..].iter().find(|other| overlaps(prefix, other)) {
            return Err(CommandError::err(&format!(
                "Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                text(prefix),
                text(other)
            )));
        }
    }
    Ok(())
}

/// `CLIENT CACHING YES|NO`: the next command's reads are (not) remembered.
pub fn client_caching(
    session: &mut Session,
    _: &dyn Env,
    args: &[Bytes],
) -> Result<Action, CommandError> {
    let Some(mode) = &session.tracking else {
        return Err(CommandError::err(
            "CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled",
        ));
    };
    if args[2].eq_ignore_ascii_case(b"yes") {
        if !mode.optin {
            return Err(CommandError::err(
                "CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
            ));
        }
    } else if args[2].eq_ignore_ascii_case(b"no") {
        if !mode.optout {
            return Err(CommandError::err(
                "CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
            ));
        }
    } else {
        return Err(CommandError::Syntax);
    }
    session.caching = true;
    Ok(Action::Reply(Reply::OK))
}

/// `CLIENT GETREDIR`: the redirection id, 0 without one, -1 when off.
pub fn client_getredir(
    session: &mut Session,
    _: &dyn Env,
    _: &[Bytes],
) -> Result<Action, CommandError> {
    Ok(Action::Reply(Reply::Integer(redirect_of(session))))
}

fn redirect_of(session: &Session) -> i64 {
    session.tracking.as_ref().map_or(-1, |m| m.redirect as i64)
}

/// `CLIENT TRACKINGINFO`: a map of `flags` (a set), `redirect` and
/// `prefixes`.
pub fn client_trackinginfo(
    session: &mut Session,
    _: &dyn Env,
    _: &[Bytes],
) -> Result<Action, CommandError> {
    let mut flags = Vec::new();
    let mut prefixes = Vec::new();
    match &session.tracking {
        None => flags.push("off"),
        Some(mode) => {
            flags.push("on");
            let broken = mode.broken.load(Ordering::Acquire);
            // Redis's order; CLIENT CACHING shows after the mode it is for.
            for (set, name, caching) in [
                (mode.bcast, "bcast", None),
                (mode.optin, "optin", Some("caching-yes")),
                (mode.optout, "optout", Some("caching-no")),
                (mode.noloop, "noloop", None),
                (broken, "broken_redirect", None),
            ] {
                if set {
                    flags.push(name);
                    flags.extend(caching.filter(|_| session.caching));
                }
            }
            prefixes.extend(mode.prefixes.iter().cloned().map(Reply::Bulk));
        }
    }
    Ok(Action::Reply(Reply::Map(vec![
        (
            Reply::bulk_str("flags"),
            Reply::Set(flags.into_iter().map(Reply::bulk_str).collect()),
        ),
        (
            Reply::bulk_str("redirect"),
            Reply::Integer(redirect_of(session)),
        ),
        (Reply::bulk_str("prefixes"), Reply::Array(prefixes)),
    ])))
}

/// The tracking letters of `CLIENT LIST`'s `flags` (`t`, `R`, `B`, in
/// Redis's order) and its `redir` field.
pub fn client_fields(session: &Session) -> (String, i64) {
    let Some(mode) = &session.tracking else {
        return (String::new(), -1);
    };
    let mut flags = String::from("t");
    if mode.broken.load(Ordering::Acquire) {
        flags.push('R');
    }
    if mode.bcast {
        flags.push('B');
    }
    (flags, mode.redirect as i64)
}

/// Tracking off (`RESET`, as Redis's `clearClientConnectionState`).
pub fn reset(session: &mut Session, env: &dyn Env) {
    if session.tracking.take().is_some() {
        if let Some(hub) = env.tracking() {
            hub.disable(session.id);
        }
    }
    session.caching = false;
}

/// After a command: `CLIENT CACHING` holds for the next command only
/// (outside a transaction; any `CLIENT` subcommand keeps it, as in Redis).
pub fn command_done(session: &mut Session, spec: &CommandSpec) {
    if session.caching && spec.name != "client" && session.multi.is_none() {
        session.caching = false;
    }
}

/// What tracking adds to a key-space command: a read in default mode
/// remembers its keys for this client (under the read lock, see
/// `node/tracking.rs`); a write of a NOLOOP client carries its identity.
pub fn track(
    session: &Session,
    env: &dyn Env,
    spec: &CommandSpec,
    args: &[Bytes],
    action: Action,
) -> Action {
    let Some(mode) = &session.tracking else {
        return action;
    };
    match action {
        Action::Read(read) if remembers(session, mode, spec, args) => {
            let Some(hub) = env.tracking().cloned() else {
                return Action::Read(read);
            };
            let keys: Vec<Bytes> = spec
                .key_positions(args)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|at| args.get(at).cloned())
                .collect();
            if keys.is_empty() {
                return Action::Read(read);
            }
            let client = session.id;
            Action::Read(Box::new(move |db, ctx| {
                let reply = read(db, ctx);
                hub.remember(client, &keys);
                reply
            }))
        }
        Action::Write(op) => Action::Write(writer_op(session, env, op)),
        // A NOLOOP client's write carries its identity: made here, of copies.
        Action::WriteArgs(lent) if mode.noloop => {
            Action::Write(writer_op(session, env, lent.copy(args)))
        }
        other => other,
    }
}

/// `op` as a NOLOOP client's entry: with the writer's identity
/// ([`Op::Client`]); any other client's op unchanged. Pub/Sub entries stay
/// bare (they must not move the replicated clock, and change no key).
pub fn writer_op<E: Env + ?Sized>(session: &Session, env: &E, op: Op) -> Op {
    let noloop = session.tracking.as_ref().is_some_and(|m| m.noloop);
    match env.pubsub() {
        Some(pubsub) if noloop && !matches!(op, Op::PubSub(_)) => Op::Client {
            client: pubsub.subscriber(session.id),
            op: Box::new(op),
        },
        _ => op,
    }
}

/// Redis's `trackingRememberKeys` conditions: a read-only command (not a
/// read-only script or function, whose own calls are not tracked here), in
/// default mode, as OPTIN/OPTOUT and CLIENT CACHING say.
fn remembers(session: &Session, mode: &Mode, spec: &CommandSpec, args: &[Bytes]) -> bool {
    if mode.bcast
        || !spec.flags.contains(Flags::READONLY)
        || spec.flags.contains(Flags::PUBSUB)
        || crate::kv::runs_script(args)
    {
        return false;
    }
    !((mode.optin && !session.caching) || (mode.optout && session.caching))
}

/// The channel RESP2 clients hear redirected invalidations on.
pub const CHANNEL: &[u8] = b"__redis__:invalidate";

/// Appends `push` as `protocol`'s client sees it; false when nothing is
/// sent (a RESP2 client hears only redirected invalidations, and only in
/// Pub/Sub mode, as in Redis).
pub fn encode_push(push: &Push, protocol: Protocol, subscribed: bool, buf: &mut BytesMut) -> bool {
    let (keys, redirected, resp3_null) = match push {
        Push::RedirBroken(id) => {
            if protocol == Protocol::Resp2 {
                return false;
            }
            buf.put_slice(b">2\r\n$21\r\ntracking-redir-broken\r\n");
            Reply::Integer(*id as i64).encode(protocol, buf);
            return true;
        }
        Push::Invalidate {
            keys,
            redirected,
            resp3_null,
        } => (keys, *redirected, *resp3_null),
    };
    match protocol {
        Protocol::Resp3 => buf.put_slice(b">2\r\n$10\r\ninvalidate\r\n"),
        Protocol::Resp2 if redirected && subscribed => {
            buf.put_slice(b"*3\r\n$7\r\nmessage\r\n");
            Reply::Bulk(Bytes::from_static(CHANNEL)).encode(protocol, buf);
        }
        Protocol::Resp2 => return false,
    }
    match keys {
        Some(keys) => {
            Reply::Array(keys.iter().cloned().map(Reply::Bulk).collect()).encode(protocol, buf)
        }
        // The tracking client's null, whoever receives it (Redis's quirk).
        None if resp3_null => buf.put_slice(b"_\r\n"),
        None => buf.put_slice(b"$-1\r\n"),
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(push: &Push, protocol: Protocol, subscribed: bool) -> Vec<u8> {
        let mut buf = BytesMut::new();
        encode_push(push, protocol, subscribed, &mut buf);
        buf.to_vec()
    }

    fn invalidate(keys: Option<&[&str]>, redirected: bool) -> Push {
        Push::Invalidate {
            keys: keys.map(|k| {
                k.iter()
                    .map(|k| Bytes::copy_from_slice(k.as_bytes()))
                    .collect()
            }),
            redirected,
            resp3_null: !redirected,
        }
    }

    /// Bytes as Redis 7.0.15 sends them.
    #[test]
    fn pushes_are_redis_bytes() {
        let k = invalidate(Some(&["k"]), false);
        assert_eq!(
            wire(&k, Protocol::Resp3, false),
            b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n"
        );
        assert!(wire(&k, Protocol::Resp2, true).is_empty());
        let redirected = invalidate(Some(&["k"]), true);
        assert_eq!(
            wire(&redirected, Protocol::Resp2, true),
            b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$1\r\nk\r\n"
        );
        assert!(wire(&redirected, Protocol::Resp2, false).is_empty());
        assert_eq!(
            wire(&invalidate(None, true), Protocol::Resp2, true),
            b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n$-1\r\n"
        );
        assert_eq!(
            wire(&invalidate(None, false), Protocol::Resp3, false),
            b">2\r\n$10\r\ninvalidate\r\n_\r\n"
        );
        assert_eq!(
            wire(&Push::RedirBroken(7), Protocol::Resp3, false),
            b">2\r\n$21\r\ntracking-redir-broken\r\n:7\r\n"
        );
        assert!(wire(&Push::RedirBroken(7), Protocol::Resp2, false).is_empty());
    }

    #[test]
    fn overlapping_prefixes_are_refused_with_redis_text() {
        let b = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        let existing = [b("ab")].into();
        assert_eq!(
            check_prefixes(&existing, &[b("a")]).unwrap_err().to_string(),
            "ERR Prefix 'a' overlaps with an existing prefix 'ab'. Prefixes for a single client must not overlap."
        );
        assert_eq!(
            check_prefixes(&Default::default(), &[b("x"), b("y"), b("xy")])
                .unwrap_err()
                .to_string(),
            "ERR Prefix 'x' overlaps with another provided prefix 'xy'. Prefixes for a single client must not overlap."
        );
        assert!(check_prefixes(&existing, &[b("b"), b("c")]).is_ok());
    }
}
