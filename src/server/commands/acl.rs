//! The `ACL` command (SETUSER, GETUSER, DELUSER, LIST, USERS, WHOAMI, CAT,
//! GENPASS, LOG, DRYRUN, LOAD, SAVE, HELP) and this node's ACL LOG.
//!
//! Changes to users (SETUSER, DELUSER, LOAD) are proposed as one
//! [`Op::Acl`] log entry each, so every node applies them in the same order;
//! they are checked against this node's users first, so a bad rule is
//! answered without a log entry (apply checks again, as the users may have
//! changed in between). Passwords are hashed before they are proposed.
//! Reads of the users (GETUSER, LIST, USERS, DRYRUN) are linearizable reads.
//! The ACL LOG is per node: it records what this node refused.
//! ACL SAVE writes this node's copy of the users to its `aclfile`; ACL LOAD
//! proposes the file's users as one entry that replaces every user.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

use bytes::Bytes;
use rand::RngExt;

use super::clients::ClientView;
use super::connection::help;
use crate::acl::user::{hash_rules, AclOp};
use crate::acl::{Categories, Denied, User, Users, CATEGORY_NAMES};
use crate::cmd::COMMANDS;
use crate::kv::Op;
use crate::server::command::{lookup, parse_i64, resolve, Action, CommandError, Env, Session};
use crate::server::reply::Reply;

/// Denied entries kept by default (Redis's `acllog-max-len`).
pub const ACL_LOG_MAX_ENTRIES: usize = 128;

/// Entries this close in time with the same reason, context, object and
/// user are counted as one (Redis: 60 s).
const GROUPING_WINDOW_MS: u128 = 60_000;

/// One ACL LOG entry.
#[derive(Clone, Debug)]
struct LogEntry {
    count: u64,
    reason: &'static str,
    context: &'static str,
    object: Bytes,
    username: Bytes,
    at: Instant,
    client_info: String,
}

/// This node's log of refused commands and failed authentications, newest
/// first, bounded.
#[derive(Debug)]
pub struct AclLog {
    entries: Mutex<VecDeque<LogEntry>>,
    max_entries: usize,
}

impl Default for AclLog {
    fn default() -> AclLog {
        AclLog::new(ACL_LOG_MAX_ENTRIES)
    }
}

impl AclLog {
    /// A log keeping at most `max_entries`.
    pub fn new(max_entries: usize) -> AclLog {
        AclLog {
            entries: Mutex::new(VecDeque::new()),
            max_entries,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<LogEntry>> {
        // Plain data: a panic mid-update leaves it usable.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a refused command.
    pub fn record(&self, session: &Session, denied: &Denied, args: &[Bytes]) {
        let (reason, object) = match denied {
            Denied::Command(name) => ("command", Bytes::from_static(name.as_bytes())),
            Denied::Key(at) => ("key", args.get(*at).cloned().unwrap_or_default()),
            Denied::Channel(at) => ("channel", args.get(*at).cloned().unwrap_or_default()),
        };
        self.add(session, reason, object, session.user.clone());
    }

    /// Records a failed AUTH / HELLO AUTH (`command`, as sent) for `username`.
    pub fn record_auth(&self, session: &Session, command: Bytes, username: Bytes) {
        self.add(session, "auth", command, username);
    }

    fn add(&self, session: &Session, reason: &'static str, object: Bytes, username: Bytes) {
        let context = if session.multi.is_some() {
            "multi"
        } else {
            "toplevel"
        };
        let now = Instant::now();
        let fd = session.client.as_ref().map_or(-1, |c| c.fd());
        let mut info = ClientView::of(session, fd).line(now);
        info.pop();
        let mut entries = self.lock();
        if let Some(entry) = entries.iter_mut().find(|e| {
            e.reason == reason
                && e.context == context
                && e.object == object
                && e.username == username
                && now.duration_since(e.at).as_millis() <= GROUPING_WINDOW_MS
        }) {
            entry.count += 1;
            entry.at = now;
            entry.client_info = info;
            return;
        }
        entries.push_front(LogEntry {
            count: 1,
            reason,
            context,
            object,
            username,
            at: now,
            client_info: info,
        });
        entries.truncate(self.max_entries);
    }

    fn reply(&self, count: usize) -> Reply {
        let now = Instant::now();
        let entries = self.lock();
        Reply::Array(
            entries
                .iter()
                .take(count)
                .map(|e| {
                    let age = now.duration_since(e.at).as_secs_f64();
                    Reply::Map(vec![
                        (Reply::bulk_str("count"), Reply::Integer(e.count as i64)),
                        (Reply::bulk_str("reason"), Reply::bulk_str(e.reason)),
                        (Reply::bulk_str("context"), Reply::bulk_str(e.context)),
                        (Reply::bulk_str("object"), Reply::Bulk(e.object.clone())),
                        (Reply::bulk_str("username"), Reply::Bulk(e.username.clone())),
                        (
                            Reply::bulk_str("age-seconds"),
                            Reply::bulk(format!("{age:.3}")),
                        ),
                        (
                            Reply::bulk_str("client-info"),
                            Reply::bulk(e.client_info.clone()),
                        ),
                    ])
                })
                .collect(),
        )
    }

    fn reset(&self) {
        self.lock().clear();
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `ACL SETUSER name [rule ...]`.
pub fn setuser(_: &mut Session, env: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    let name = args[2].clone();
    // Checked here against this node's users, with the rules as given (so
    // an error quotes them as the client wrote them): most errors need no
    // log entry.
    env.users()
        .preview(&name, &args[3..])
        .map_err(|e| CommandError::Acl(e.to_string()))?;
    let rules = hash_rules(&args[3..]);
    Ok(Action::Write(Op::Acl(AclOp::SetUser { name, rules })))
}

/// `ACL DELUSER name [name ...]`.
pub fn deluser(_: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    let names = args[2..].to_vec();
    if names.iter().any(|n| &n[..] == b"default") {
        return Err(CommandError::Acl(
            "The 'default' user cannot be removed".to_string(),
        ));
    }
    Ok(Action::Write(Op::Acl(AclOp::DelUser { names })))
}

/// `ACL GETUSER`'s reply for `user` (Redis 7.0's shape).
pub fn getuser_reply(user: &User) -> Reply {
    Reply::Map(vec![
        (
            Reply::bulk_str("flags"),
            Reply::Array(user.flags().into_iter().map(Reply::bulk_str).collect()),
        ),
        (
            Reply::bulk_str("passwords"),
            Reply::Array(user.passwords.iter().map(|p| Reply::bulk_str(p)).collect()),
        ),
        (
            Reply::bulk_str("commands"),
            Reply::bulk(user.describe_commands()),
        ),
        (Reply::bulk_str("keys"), Reply::bulk(user.describe_keys())),
        (
            Reply::bulk_str("channels"),
            Reply::bulk(user.describe_channels()),
        ),
        (Reply::bulk_str("selectors"), Reply::Array(vec![])),
    ])
}

/// `ACL GETUSER name` (a linearizable read).
pub fn getuser(_: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    let name = args[2].clone();
    Ok(Action::Read(Box::new(move |db, _| {
        db.users().get(&name).map_or(Reply::Null, getuser_reply)
    })))
}

/// The `ACL LIST` lines of `users`.
pub fn list_lines(users: &Users) -> Vec<String> {
    users
        .iter()
        .map(|(name, user)| format!("user {} {}", text(name), user.describe()))
        .collect()
}

/// `ACL LIST`.
pub fn list(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    Ok(Action::Read(Box::new(|db, _| {
        Reply::Array(
            list_lines(&db.users())
                .into_iter()
                .map(Reply::bulk)
                .collect(),
        )
    })))
}

/// `ACL USERS`.
pub fn users(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    Ok(Action::Read(Box::new(|db, _| {
        Reply::Array(
            db.users()
                .iter()
                .map(|(name, _)| Reply::Bulk(name.clone()))
                .collect(),
        )
    })))
}

/// `ACL WHOAMI`.
pub fn whoami(session: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    Ok(Action::Reply(Reply::Bulk(session.user.clone())))
}

/// `ACL CAT [category]`.
pub fn cat(_: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    let Some(name) = args.get(2) else {
        return Ok(Action::Reply(Reply::Array(
            CATEGORY_NAMES.iter().map(|n| Reply::bulk_str(n)).collect(),
        )));
    };
    if args.len() > 3 {
        return Err(CommandError::WrongArity { name: "acl|cat" });
    }
    let category = Categories::by_name(name).ok_or_else(|| {
        CommandError::Acl(format!(
            "Unknown category '{}'",
            text(&name[..name.len().min(128)])
        ))
    })?;
    let mut names = Vec::new();
    for spec in COMMANDS.iter() {
        if spec.acl_categories.contains(category) {
            names.push(Reply::bulk_str(spec.name));
        }
        for sub in spec.subcommands {
            if sub.acl_categories.contains(category) {
                names.push(Reply::bulk_str(sub.full_name));
            }
        }
    }
    Ok(Action::Reply(Reply::Array(names)))
}

/// Longest `ACL GENPASS` output, in bits.
const GENPASS_MAX_BITS: i64 = 4096;

/// `ACL GENPASS [bits]`: random hex, 4 bits per character.
pub fn genpass(_: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    if args.len() > 3 {
        return Err(CommandError::WrongArity {
            name: "acl|genpass",
        });
    }
    let bits = match args.get(2) {
        None => 256,
        Some(arg) => parse_i64(arg).ok_or(CommandError::NotInteger)?,
    };
    if bits <= 0 || bits > GENPASS_MAX_BITS {
        return Err(CommandError::Acl(format!(
            "ACL GENPASS argument must be the number of bits for the output password, a positive number up to {GENPASS_MAX_BITS}"
        )));
    }
    let chars = ((bits + 3) / 4) as usize;
    let mut rng = rand::rng();
    let hex: String = (0..chars)
        .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16usize)]))
        .collect();
    Ok(Action::Reply(Reply::bulk(hex)))
}

/// `ACL LOG [count | RESET]` (this node's refusals).
pub fn log(_: &mut Session, env: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    if args.len() > 3 {
        return Err(CommandError::WrongArity { name: "acl|log" });
    }
    let Some(log) = env.acl_log() else {
        return Ok(Action::Reply(Reply::Array(vec![])));
    };
    let count = match args.get(2) {
        None => 10,
        Some(arg) if arg.eq_ignore_ascii_case(b"reset") => {
            log.reset();
            return Ok(Action::Reply(Reply::OK));
        }
        Some(arg) => parse_i64(arg).ok_or(CommandError::NotInteger)?.max(0) as usize,
    };
    Ok(Action::Reply(log.reply(count)))
}

/// `ACL DRYRUN user command [arg ...]`: would `user` be allowed to run it?
pub fn dryrun(_: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    let name = args[2].clone();
    let command = args[3..].to_vec();
    let Some((_, spec)) = lookup(&command[0]) else {
        return Err(CommandError::Acl(format!(
            "Command '{}' not found",
            text(&command[0])
        )));
    };
    if let Err(error) = resolve(spec, &command) {
        return Err(match error {
            CommandError::UnknownSubcommand { .. } => {
                CommandError::Acl(format!("Command '{}' not found", text(&command[0])))
            }
            other => other,
        });
    }
    let full_name = spec
        .subcommands
        .iter()
        .find(|s| {
            command
                .get(1)
                .is_some_and(|a| a.eq_ignore_ascii_case(s.name.as_bytes()))
        })
        .map_or(spec.name, |s| s.full_name);
    Ok(Action::Read(Box::new(move |db, _| {
        let users = db.users();
        let Some(user) = users.get(&name) else {
            return Reply::Error(format!("ERR User '{}' not found", text(&name)));
        };
        match crate::acl::check(user, spec, full_name, &command) {
            Ok(()) => Reply::OK,
            Err(Denied::Command(name)) => Reply::bulk(format!(
                "This user has no permissions to run the '{name}' command"
            )),
            Err(Denied::Key(at)) => Reply::bulk(format!(
                "This user has no permissions to access the '{}' key",
                text(&command[at])
            )),
            Err(Denied::Channel(at)) => Reply::bulk(format!(
                "This user has no permissions to access the '{}' channel",
                text(&command[at])
            )),
        }
    })))
}

const NO_ACL_FILE: &str = "This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.";

/// Parses an ACL file (`user <name> <rule> ...` per line; blank lines and
/// `#` comments skipped) into `(name, rules)`, checking every rule.
///
/// # Errors
/// Redis-style `path:line: reason` text for the first bad line.
pub fn parse_acl_file(path: &str, contents: &str) -> Result<Vec<(Bytes, Vec<Bytes>)>, String> {
    let mut users: Vec<(Bytes, Vec<Bytes>)> = Vec::new();
    for (n, line) in contents.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if words[0] != "user" || words.len() < 2 {
            return Err(format!(
                "{path}:{}: line should start with user keyword",
                n + 1
            ));
        }
        let name = Bytes::copy_from_slice(words[1].as_bytes());
        if users.iter().any(|(u, _)| *u == name) {
            return Err(format!(
                "{path}:{}: Duplicate user '{}' found",
                n + 1,
                words[1]
            ));
        }
        let rules: Vec<Bytes> = words[2..]
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        let rules = hash_rules(&rules);
        Users::default()
            .preview(&name, &rules)
            .map_err(|e| format!("{path}:{}: {e}. ", n + 1))?;
        users.push((name, rules));
    }
    Ok(users)
}

/// `ACL LOAD`: the `aclfile`'s users replace every user, cluster-wide (one
/// log entry).
pub fn load(_: &mut Session, env: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    let path = env
        .acl_file()
        .ok_or_else(|| CommandError::Acl(NO_ACL_FILE.to_string()))?;
    let shown = path.display().to_string();
    let contents = std::fs::read_to_string(path).map_err(|e| {
        CommandError::Acl(format!("Error loading ACLs, opening file '{shown}': {e}"))
    })?;
    let users = parse_acl_file(&shown, &contents).map_err(CommandError::Acl)?;
    Ok(Action::Write(Op::Acl(AclOp::Replace { users })))
}

/// `ACL SAVE`: this node's users to its `aclfile` (written to a temporary
/// file, then renamed over it). A linearizable read, so the file has every
/// user change acknowledged before the command (the small write happens
/// under the map's read lock; ACL SAVE is rare).
pub fn save(_: &mut Session, env: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    let path = env
        .acl_file()
        .ok_or_else(|| CommandError::Acl(NO_ACL_FILE.to_string()))?
        .to_path_buf();
    Ok(Action::Read(Box::new(move |db, _| {
        let mut contents = list_lines(&db.users()).join("\n");
        contents.push('\n');
        let tmp = path.with_extension("tmp");
        let written = std::fs::write(&tmp, contents).and_then(|()| std::fs::rename(&tmp, &path));
        match written {
            Ok(()) => Reply::OK,
            Err(error) => {
                tracing::warn!(%error, path = %path.display(), "ACL SAVE failed");
                Reply::Error(
                    "ERR There was an error trying to save the ACLs. Please check the server logs for more information".to_string(),
                )
            }
        }
    })))
}

pub fn acl_help(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    help(&[
        "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CAT [<category>]",
        "    List all commands that belong to <category>, or all command categories",
        "    when no category is specified.",
        "DELUSER <username> [<username> ...]",
        "    Delete a list of users (on every node).",
        "DRYRUN <username> <command> [<arg> ...]",
        "    Returns whether the user can execute the given command without executing the command.",
        "GETUSER <username>",
        "    Get the user's details.",
        "GENPASS [<bits>]",
        "    Generate a secure 256-bit user password. The optional `bits` argument can",
        "    be used to specify a different size.",
        "LIST",
        "    Show users details in config file format.",
        "LOAD",
        "    Reload users from the ACL file (replaces every user on every node).",
        "LOG [<count> | RESET]",
        "    Show the ACL log entries of this node.",
        "SAVE",
        "    Save this node's users to the ACL file.",
        "SETUSER <username> <attribute> [<attribute> ...]",
        "    Create or modify a user with the specified attributes (on every node).",
        "USERS",
        "    List all the registered usernames.",
        "WHOAMI",
        "    Return the current connection username.",
        "HELP",
        "    Print this help.",
    ])
}
