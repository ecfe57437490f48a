//! The Pub/Sub commands on a connection: their table rows, their handlers,
//! the frames' wire form, and RESP2's subscribed mode.
//!
//! `PUBLISH`/`SPUBLISH` are writes (one log entry, their reply the count
//! apply computes); `PUBSUB CHANNELS|NUMSUB|NUMPAT|SHARD*` are linearizable
//! reads of the replicated registry. The (un)subscribe commands become an
//! [`Action::PubSub`] that the connection carries out itself
//! (`connection.rs`): it registers with the node's hub, proposes the entry,
//! and forwards the confirmations apply queued for it — so confirmations and
//! messages reach the client in log order.
//!
//! Channel permissions are checked here, as Redis 7.0 checks them: every
//! channel of SUBSCRIBE/SSUBSCRIBE/PUBLISH/SPUBLISH against the user's
//! channel patterns; a PSUBSCRIBE pattern must be one of them literally.

use bytes::{BufMut, Bytes, BytesMut};

use super::command::{Action, CommandError, Env, Session};
use super::commands::connection::help;
use super::reply::{Protocol, Reply};
use crate::acl::{Categories as C, Denied, KeyAccess};
use crate::cmd::{server as spec, CommandSpec, Flags, SubcommandSpec, NO_KEYS};
use crate::kv::pubsub::{Frame, Kind, PubSubOp};
use crate::kv::Op;

/// An (un)subscribe for the connection to carry out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The namespace.
    pub kind: Kind,
    /// Channels or patterns (unsubscribe: empty means all).
    pub names: Vec<Bytes>,
    /// Subscribe (else unsubscribe).
    pub subscribe: bool,
}

impl Change {
    /// The log operation for client `who`.
    pub fn op(self, who: crate::kv::pubsub::Subscriber) -> PubSubOp {
        if self.subscribe {
            PubSubOp::Subscribe {
                who,
                kind: self.kind,
                names: self.names,
            }
        } else {
            PubSubOp::Unsubscribe {
                who,
                kind: self.kind,
                names: self.names,
            }
        }
    }
}

/// Checks the user's channel permissions for `args[from..]` (`literal`:
/// patterns, which must be granted as they are).
fn channels_allowed(
    session: &Session,
    env: &dyn Env,
    args: &[Bytes],
    from: usize,
    to: usize,
    literal: bool,
) -> Result<(), CommandError> {
    let users = env.users();
    let Some(user) = users.get(&session.user) else {
        return Err(CommandError::UserDeleted);
    };
    if user.all_channels {
        return Ok(());
    }
    for (at, channel) in args.iter().enumerate().take(to).skip(from) {
        let ok = if literal {
            user.channels.iter().any(|p| p == channel)
        } else {
            user.may_use_channel(channel)
        };
        if !ok {
            if let Some(log) = env.acl_log() {
                log.record(session, &Denied::Channel(at), args);
            }
            return Err(CommandError::NoPermChannel);
        }
    }
    Ok(())
}

fn change(kind: Kind, subscribe: bool, args: &[Bytes]) -> Action {
    Action::PubSub(Change {
        kind,
        names: args[1..].to_vec(),
        subscribe,
    })
}

fn subscribe(s: &mut Session, env: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    channels_allowed(s, env, args, 1, args.len(), false)?;
    Ok(change(Kind::Channel, true, args))
}

fn psubscribe(s: &mut Session, env: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    channels_allowed(s, env, args, 1, args.len(), true)?;
    Ok(change(Kind::Pattern, true, args))
}

fn ssubscribe(s: &mut Session, env: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    channels_allowed(s, env, args, 1, args.len(), false)?;
    Ok(change(Kind::Shard, true, args))
}

fn unsubscribe(_: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    Ok(change(Kind::Channel, false, args))
}

fn punsubscribe(_: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    Ok(change(Kind::Pattern, false, args))
}

fn sunsubscribe(_: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    Ok(change(Kind::Shard, false, args))
}

fn publish_op(
    shard: bool,
    s: &Session,
    env: &dyn Env,
    args: &[Bytes],
) -> Result<Action, CommandError> {
    channels_allowed(s, env, args, 1, 2, false)?;
    Ok(Action::Write(Op::PubSub(PubSubOp::Publish {
        channel: args[1].clone(),
        message: args[2].clone(),
        shard,
    })))
}

fn publish(s: &mut Session, env: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    publish_op(false, s, env, args)
}

fn spublish(s: &mut Session, env: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    publish_op(true, s, env, args)
}

/// `PUBSUB CHANNELS [pattern]` takes at most one pattern (Redis's text).
fn one_pattern(args: &[Bytes]) -> Result<Option<Bytes>, CommandError> {
    match args.len() {
        2 => Ok(None),
        3 => Ok(Some(args[2].clone())),
        _ => Err(CommandError::Data(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
            String::from_utf8_lossy(&args[1])
        ))),
    }
}

fn channels_of(shard: bool, args: &[Bytes]) -> Result<Action, CommandError> {
    let pattern = one_pattern(args)?;
    Ok(Action::Read(Box::new(move |db, _| {
        Reply::Array(
            db.pubsub
                .channel_names(pattern.as_deref(), shard)
                .into_iter()
                .map(Reply::Bulk)
                .collect(),
        )
    })))
}

fn numsub_of(shard: bool, args: &[Bytes]) -> Action {
    let channels = args[2..].to_vec();
    Action::Read(Box::new(move |db, _| {
        let mut out = Vec::with_capacity(channels.len() * 2);
        for channel in channels {
            let n = db.pubsub.numsub(&channel, shard);
            out.push(Reply::Bulk(channel));
            out.push(Reply::Integer(n as i64));
        }
        Reply::Array(out)
    }))
}

fn pubsub_channels(_: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    channels_of(false, args)
}

fn pubsub_shardchannels(
    _: &mut Session,
    _: &dyn Env,
    args: &[Bytes],
) -> Result<Action, CommandError> {
    channels_of(true, args)
}

fn pubsub_numsub(_: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    Ok(numsub_of(false, args))
}

fn pubsub_shardnumsub(
    _: &mut Session,
    _: &dyn Env,
    args: &[Bytes],
) -> Result<Action, CommandError> {
    Ok(numsub_of(true, args))
}

fn pubsub_numpat(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    Ok(Action::Read(Box::new(|db, _| {
        Reply::Integer(db.pubsub.numpat() as i64)
    })))
}

fn pubsub_help(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    help(&[
        "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CHANNELS [<pattern>]",
        "    Return the currently active channels matching a <pattern> (default: '*').",
        "NUMPAT",
        "    Return number of subscriptions to patterns.",
        "NUMSUB [<channel> ...]",
        "    Return the number of subscribers for the specified channels, excluding",
        "    pattern subscriptions(default: no channels).",
        "SHARDCHANNELS [<pattern>]",
        "    Return the currently active shard level channels matching a <pattern> (default: '*').",
        "SHARDNUMSUB [<shardchannel> ...]",
        "    Return the number of subscribers for the specified shard level channel(s)",
        "HELP",
        "    Prints this help.",
    ])
}

fn pubsub_container(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    // Arity -2 sends every call to a subcommand or its unknown-subcommand
    // error first.
    Err(CommandError::Syntax)
}

/// The error a RESP2 client in subscribed mode gets for any other command
/// (Redis 7.0.15's text; `name` is the full name, `pubsub|numsub`).
pub fn not_in_subscribed_mode(name: &str) -> CommandError {
    CommandError::Data(format!(
        "ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
    ))
}

/// [`not_in_subscribed_mode`] for `name`, in the form Redis 7.0 gives any
/// refused command: EXEC's refusal reads `EXECABORT Transaction discarded
/// because of: <the error without its ERR>`.
pub fn refused_in_subscribed_mode(name: &str) -> CommandError {
    let error = not_in_subscribed_mode(name);
    if name != "exec" {
        return error;
    }
    let text = error.to_string();
    CommandError::Data(format!(
        "EXECABORT Transaction discarded because of: {}",
        text.strip_prefix("ERR ").unwrap_or(&text)
    ))
}

/// True for the commands a RESP2 subscribed client may send.
pub fn allowed_in_subscribed_mode(name: &str) -> bool {
    matches!(
        name,
        "subscribe"
            | "ssubscribe"
            | "psubscribe"
            | "unsubscribe"
            | "sunsubscribe"
            | "punsubscribe"
            | "ping"
            | "quit"
            | "reset"
    )
}

/// Appends `frame` as the client sees it: an array in RESP2, a push (`>`)
/// in RESP3. Returns false for frames that are not sent.
pub fn encode_frame(frame: &Frame, protocol: Protocol, buf: &mut BytesMut) -> bool {
    let Some(crate::kv::Output::Array(items)) = frame.output() else {
        return false;
    };
    buf.put_u8(match protocol {
        Protocol::Resp2 => b'*',
        Protocol::Resp3 => b'>',
    });
    buf.put_slice(items.len().to_string().as_bytes());
    buf.put_slice(b"\r\n");
    for item in items {
        Reply::from(item).encode(protocol, buf);
    }
    true
}

const PS: &str = "@pubsub";
const SUB_FLAGS: Flags = Flags::PUBSUB.or(Flags::LOADING);
const PUB_FLAGS: Flags = SUB_FLAGS.or(Flags::FAST);
const SLOW_PUBSUB: C = C::of(&[C::PUBSUB, C::SLOW]);
const FAST_PUBSUB: C = C::of(&[C::PUBSUB, C::FAST]);
const NONE: (KeyAccess, KeyAccess) = (KeyAccess::NONE, KeyAccess::NONE);

macro_rules! sub {
    ($name:literal, $arity:expr, $handler:expr, $categories:expr, $flags:expr) => {
        SubcommandSpec::new(
            $name,
            concat!("pubsub|", $name),
            $arity,
            $handler,
            $categories,
        )
        .with_flags($flags)
    };
}

static PUBSUB_SUBCOMMANDS: &[SubcommandSpec] = &[
    sub!("channels", -2, pubsub_channels, SLOW_PUBSUB, SUB_FLAGS).doc(
        "List active channels",
        "2.8.0",
        "O(N) where N is the number of active channels, and assuming constant time pattern matching (relatively short channels and patterns)",
    ),
    sub!("numpat", 2, pubsub_numpat, SLOW_PUBSUB, SUB_FLAGS).doc(
        "Get the count of unique patterns pattern subscriptions",
        "2.8.0",
        "O(1)",
    ),
    sub!("numsub", -2, pubsub_numsub, SLOW_PUBSUB, SUB_FLAGS).doc(
        "Get the count of subscribers for channels",
        "2.8.0",
        "O(N) for the NUMSUB subcommand, where N is the number of requested channels",
    ),
    sub!(
        "shardchannels",
        -2,
        pubsub_shardchannels,
        SLOW_PUBSUB,
        SUB_FLAGS
    )
    .doc(
        "List active shard channels",
        "7.0.0",
        "O(N) where N is the number of active shard channels, and assuming constant time pattern matching (relatively short shard channels).",
    ),
    sub!(
        "shardnumsub",
        -2,
        pubsub_shardnumsub,
        SLOW_PUBSUB,
        SUB_FLAGS
    )
    .doc(
        "Get the count of subscribers for shard channels",
        "7.0.0",
        "O(N) for the SHARDNUMSUB subcommand, where N is the number of requested shard channels",
    ),
    sub!("help", 2, pubsub_help, C::of(&[C::SLOW]), Flags::LOADING).doc(
        "Show helpful text about the different subcommands",
        "6.2.0",
        "O(1)",
    ),
];

/// The Pub/Sub rows (flags, arity and categories as Redis 7.0.15's `COMMAND
/// INFO`; the shard commands show no key positions: Redis marks theirs
/// `not_key`, and dkv's ACL would otherwise check them as keys).
pub(crate) static PUBSUB_COMMANDS: &[CommandSpec] = &[
    spec("subscribe", -2, SUB_FLAGS, PS, NO_KEYS, subscribe)
        .acl(SLOW_PUBSUB, NONE)
        .doc("Listen for messages published to the given channels", "2.0.0", "O(N) where N is the number of channels to subscribe to."),
    spec("unsubscribe", -1, SUB_FLAGS, PS, NO_KEYS, unsubscribe)
        .acl(SLOW_PUBSUB, NONE)
        .doc("Stop listening for messages posted to the given channels", "2.0.0", "O(N) where N is the number of clients already subscribed to a channel."),
    spec("psubscribe", -2, SUB_FLAGS, PS, NO_KEYS, psubscribe)
        .acl(SLOW_PUBSUB, NONE)
        .doc("Listen for messages published to channels matching the given patterns", "2.0.0", "O(N) where N is the number of patterns the client is already subscribed to."),
    spec("punsubscribe", -1, SUB_FLAGS, PS, NO_KEYS, punsubscribe)
        .acl(SLOW_PUBSUB, NONE)
        .doc("Stop listening for messages posted to channels matching the given patterns", "2.0.0", "O(N+M) where N is the number of patterns the client is already subscribed and M is the number of total patterns subscribed in the system (by any client)."),
    spec("publish", 3, PUB_FLAGS, PS, NO_KEYS, publish)
        .acl(FAST_PUBSUB, NONE)
        .doc("Post a message to a channel", "2.0.0", "O(N+M) where N is the number of clients subscribed to the receiving channel and M is the total number of subscribed patterns (by any client)."),
    spec("ssubscribe", -2, SUB_FLAGS, PS, NO_KEYS, ssubscribe)
        .acl(SLOW_PUBSUB, NONE)
        .doc("Listen for messages published to the given shard channels", "7.0.0", "O(N) where N is the number of shard channels to subscribe to."),
    spec("sunsubscribe", -1, SUB_FLAGS, PS, NO_KEYS, sunsubscribe)
        .acl(SLOW_PUBSUB, NONE)
        .doc("Stop listening for messages posted to the given shard channels", "7.0.0", "O(N) where N is the number of clients already subscribed to a shard channel."),
    spec("spublish", 3, PUB_FLAGS, PS, NO_KEYS, spublish)
        .acl(FAST_PUBSUB, NONE)
        .doc("Post a message to a shard channel", "7.0.0", "O(N) where N is the number of clients subscribed to the receiving shard channel."),
    CommandSpec {
        subcommands: PUBSUB_SUBCOMMANDS,
        ..spec("pubsub", -2, Flags::NONE, PS, NO_KEYS, pubsub_container)
            .acl(C::of(&[C::SLOW]), NONE)
            .doc("A container for Pub/Sub commands", "2.8.0", "Depends on subcommand.")
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn wire(frame: &Frame, protocol: Protocol) -> Vec<u8> {
        let mut buf = BytesMut::new();
        encode_frame(frame, protocol, &mut buf);
        buf.to_vec()
    }

    /// Bytes captured from Redis 7.0.15 (RESP2 and after HELLO 3).
    #[test]
    fn frames_are_redis_bytes_in_both_protocols() {
        let message = Frame::Message {
            channel: b("ch"),
            message: b("hi"),
            shard: false,
        };
        assert_eq!(
            wire(&message, Protocol::Resp2),
            b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n"
        );
        assert_eq!(
            wire(&message, Protocol::Resp3),
            b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n"
        );
        let pmessage = Frame::PMessage {
            pattern: b("c*"),
            channel: b("ch"),
            message: b("hi"),
        };
        assert_eq!(
            wire(&pmessage, Protocol::Resp3),
            b">4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$2\r\nch\r\n$2\r\nhi\r\n"
        );
        let smessage = Frame::Message {
            channel: b("ch"),
            message: b("sh"),
            shard: true,
        };
        assert_eq!(
            wire(&smessage, Protocol::Resp2),
            b"*3\r\n$8\r\nsmessage\r\n$2\r\nch\r\n$2\r\nsh\r\n"
        );
        let confirm = Frame::Confirm {
            word: "psubscribe",
            name: Some(b("n*")),
            count: 3,
        };
        assert_eq!(
            wire(&confirm, Protocol::Resp2),
            b"*3\r\n$10\r\npsubscribe\r\n$2\r\nn*\r\n:3\r\n"
        );
        let none = Frame::Confirm {
            word: "unsubscribe",
            name: None,
            count: 0,
        };
        assert_eq!(
            wire(&none, Protocol::Resp2),
            b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n"
        );
        assert_eq!(
            wire(&none, Protocol::Resp3),
            b">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n"
        );
        assert!(wire(&Frame::Applied, Protocol::Resp2).is_empty());
    }

    #[test]
    fn subscribed_mode_error_is_redis_text() {
        assert_eq!(
            not_in_subscribed_mode("pubsub|numsub").to_string(),
            "ERR Can't execute 'pubsub|numsub': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
        );
        assert!(allowed_in_subscribed_mode("ping") && !allowed_in_subscribed_mode("get"));
        // Redis 7.0.15, `SUBSCRIBE a` then `EXEC` in RESP2.
        assert_eq!(
            refused_in_subscribed_mode("exec").to_string(),
            "EXECABORT Transaction discarded because of: Can't execute 'exec': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
        );
        assert_eq!(
            refused_in_subscribed_mode("get"),
            not_in_subscribed_mode("get")
        );
    }
}
