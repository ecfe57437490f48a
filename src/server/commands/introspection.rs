//! Introspection: COMMAND (COUNT, DOCS, INFO, LIST), CONFIG GET/SET, INFO,
//! TIME, LASTSAVE.

use bytes::Bytes;

use super::connection::help;
use crate::cmd::{lookup_full_name, Named, SubcommandSpec, COMMANDS};
use crate::kv::{Op, DATABASES, MAX_STRING_BYTES};
use crate::server::client_limits::{
    parse_memory, ClientLimits, ClientSettings, MaxMemoryClients, MAX_IDLE_TIMEOUT_SECONDS,
    MIN_QUERY_BUFFER_LIMIT_BYTES,
};
use crate::server::command::{lookup, preview, Action, CommandError, CommandSpec, Env, Session};
use crate::server::info::{self, InfoInput};
use crate::server::reply::Reply;

/// One command's `COMMAND INFO` entry (Redis 7 layout: name, arity, flags, first
/// key, last key, step, ACL categories, tips, key specs, subcommands).
pub fn command_entry(spec: &CommandSpec) -> Reply {
    Reply::Array(vec![
        Reply::bulk_str(spec.name),
        Reply::Integer(i64::from(spec.arity)),
        flag_names(spec.flags),
        Reply::Integer(spec.first_key),
        Reply::Integer(spec.last_key),
        Reply::Integer(spec.key_step),
        category_names(spec.acl_categories),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
        Reply::Array(
            spec.subcommands
                .iter()
                .map(|sub| subcommand_entry(spec, sub))
                .collect(),
        ),
    ])
}

/// A subcommand's `COMMAND INFO` entry: the same layout, named in full
/// (`config|get`), with no subcommands of its own.
fn subcommand_entry(spec: &CommandSpec, sub: &SubcommandSpec) -> Reply {
    Reply::Array(vec![
        Reply::bulk_str(sub.full_name),
        Reply::Integer(i64::from(sub.arity)),
        flag_names(sub.flags.unwrap_or(spec.flags)),
        Reply::Integer(sub.keys.0),
        Reply::Integer(sub.keys.1),
        Reply::Integer(sub.keys.2),
        category_names(sub.acl_categories),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
    ])
}

/// The `COMMAND INFO` entry of a command or subcommand.
fn named_entry(named: Named) -> Reply {
    match named {
        Named::Command(spec) => command_entry(spec),
        Named::Sub(spec, sub) => subcommand_entry(spec, sub),
    }
}

/// Flags as `COMMAND INFO` shows them.
fn flag_names(flags: crate::cmd::Flags) -> Reply {
    Reply::Array(flags.redis_names().map(Reply::Simple).collect())
}

/// ACL categories as `COMMAND INFO` shows them (`@read`, `@string` ...).
fn category_names(categories: crate::acl::Categories) -> Reply {
    Reply::Array(categories.names().map(Reply::Simple).collect())
}

pub fn command_all(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    Ok(Action::Reply(Reply::Array(
        COMMANDS.iter().map(|spec| command_entry(spec)).collect(),
    )))
}

pub fn command_count(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    Ok(Action::Reply(Reply::Integer(COMMANDS.len() as i64)))
}

pub fn command_info(_: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    if args.len() == 2 {
        return Ok(Action::Reply(Reply::Array(
            COMMANDS.iter().map(|spec| command_entry(spec)).collect(),
        )));
    }
    Ok(Action::Reply(Reply::Array(
        args[2..]
            .iter()
            .map(|name| lookup_full_name(name).map_or(Reply::Null, named_entry))
            .collect(),
    )))
}

/// Redis-shaped docs (summary, since, group, complexity, arguments,
/// subcommands) for the requested commands or subcommands (`config|get`),
/// or all commands: redis-cli's interactive hints read them. Unknown names
/// are left out, as Redis leaves them.
pub fn command_docs(_: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    let named: Vec<Named> = if args.len() == 2 {
        COMMANDS.iter().map(|&spec| Named::Command(spec)).collect()
    } else {
        args[2..]
            .iter()
            .filter_map(|name| lookup_full_name(name))
            .collect()
    };
    Ok(Action::Reply(Reply::Map(
        named
            .into_iter()
            .map(|named| match named {
                Named::Command(spec) => (Reply::bulk_str(spec.name), super::docs::doc(spec)),
                Named::Sub(spec, sub) => (
                    Reply::bulk_str(sub.full_name),
                    super::docs::sub_doc(spec, sub),
                ),
            })
            .collect(),
    )))
}

/// `COMMAND GETKEYS command [arg ...]`: the keys the command would use,
/// from its definition (fixed positions and any `numkeys` keys).
pub fn command_getkeys(
    _: &mut Session,
    _: &dyn Env,
    args: &[Bytes],
) -> Result<Action, CommandError> {
    let command = &args[2..];
    let invalid = |what: &str| Ok(Action::Reply(Reply::Error(format!("ERR {what}"))));
    let Some((_, spec)) = lookup(&command[0]) else {
        return invalid("Invalid command specified");
    };
    if !spec.arity_ok(command.len()) {
        return invalid("Invalid number of arguments specified for command");
    }
    let Some(positions) = spec.key_positions(command) else {
        return invalid("Invalid arguments specified for command");
    };
    if positions.is_empty() {
        return invalid("The command has no key arguments");
    }
    Ok(Action::Reply(Reply::Array(
        positions
            .into_iter()
            .map(|at| Reply::Bulk(command[at].clone()))
            .collect(),
    )))
}

/// `COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN glob]`:
/// every command's name followed by its subcommands' full names
/// (`config|get`), those the filter keeps. dkv loads no modules, so
/// `MODULE` keeps none; an unknown category keeps none (as Redis); the
/// pattern matches the full name, case-insensitively.
pub fn command_list(_: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    let filter = match &args[2..] {
        [] => ListFilter::All,
        // One filter, ending the line (Redis refuses anything else).
        [by, kind, value] if by.eq_ignore_ascii_case(b"filterby") => {
            match kind.to_ascii_lowercase().as_slice() {
                b"module" => ListFilter::Module,
                b"aclcat" => ListFilter::Category(crate::acl::Categories::by_name(value)),
                b"pattern" => ListFilter::Pattern(value),
                _ => return Err(CommandError::Syntax),
            }
        }
        _ => return Err(CommandError::Syntax),
    };
    let mut names = Vec::new();
    for &spec in COMMANDS.iter() {
        if filter.keeps(spec.name, spec.acl_categories) {
            names.push(Reply::bulk_str(spec.name));
        }
        for sub in spec.subcommands {
            if filter.keeps(sub.full_name, sub.acl_categories) {
                names.push(Reply::bulk_str(sub.full_name));
            }
        }
    }
    Ok(Action::Reply(Reply::Array(names)))
}

/// What `COMMAND LIST FILTERBY` keeps.
enum ListFilter<'a> {
    All,
    /// Commands of a module: none in dkv.
    Module,
    /// Commands in the category (None: an unknown category, none kept).
    Category(Option<crate::acl::Categories>),
    /// Full names matching the glob.
    Pattern(&'a [u8]),
}

impl ListFilter<'_> {
    fn keeps(&self, full_name: &str, categories: crate::acl::Categories) -> bool {
        match self {
            ListFilter::All => true,
            ListFilter::Module => false,
            ListFilter::Category(wanted) => {
                wanted.is_some_and(|wanted| categories.contains(wanted))
            }
            ListFilter::Pattern(pattern) => glob_match(pattern, full_name.as_bytes()),
        }
    }
}

pub fn command_help(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
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
    let kv = env.kv_info();
    let client = env
        .client_limits()
        .map_or_else(ClientSettings::default, ClientLimits::settings);
    let mut params = vec![
        ("save", String::new()),
        ("appendonly", "no".to_string()),
        ("maxmemory", kv.maxmemory.to_string()),
        ("maxmemory-policy", kv.policy.to_string()),
        ("maxmemory-samples", "5".to_string()),
        ("notify-keyspace-events", kv.notify_keyspace_events.clone()),
        ("maxclients", facts.max_clients.to_string()),
        ("databases", DATABASES.to_string()),
        ("port", facts.tcp_port.to_string()),
        ("bind", String::new()),
        ("timeout", client.idle_timeout_seconds.to_string()),
        ("client-output-buffer-limit", client.output.render()),
        (
            "client-query-buffer-limit",
            client.query_buffer_limit_bytes.to_string(),
        ),
        ("maxmemory-clients", client.maxmemory_clients.render()),
        ("cluster-enabled", "no".to_string()),
        ("proto-max-bulk-len", MAX_STRING_BYTES.to_string()),
        (
            "busy-reply-threshold",
            busy_reply_threshold_ms(env).to_string(),
        ),
        ("lua-time-limit", busy_reply_threshold_ms(env).to_string()),
        (
            "tracking-table-max-keys",
            env.tracking()
                .map_or(crate::node::tracking::DEFAULT_MAX_KEYS, |hub| {
                    hub.max_keys()
                })
                .to_string(),
        ),
    ];
    params.extend(diagnostics_params(env));
    params
}

/// The slow log's and latency monitor's parameters (this node's own, like
/// Redis's; CONFIG SET changes them at once).
fn diagnostics_params(env: &dyn Env) -> Vec<(&'static str, String)> {
    let (slower_than, max_len, threshold) = env.stats().map_or(
        (
            crate::server::stats::slowlog::DEFAULT_SLOWER_THAN_USEC,
            crate::server::stats::slowlog::DEFAULT_MAX_LEN,
            0,
        ),
        |s| {
            (
                s.slowlog.slower_than_usec(),
                s.slowlog.max_len(),
                s.latency.threshold_ms(),
            )
        },
    );
    vec![
        ("slowlog-log-slower-than", slower_than.to_string()),
        ("slowlog-max-len", max_len.to_string()),
        ("latency-monitor-threshold", threshold.to_string()),
        ("latency-tracking", "yes".to_string()),
        (
            "latency-tracking-info-percentiles",
            "50 99 99.9".to_string(),
        ),
    ]
}

/// A diagnostics parameter's new value, checked (Redis's ranges and texts).
#[derive(Clone, Copy)]
enum DiagnosticsSetting {
    SlowerThan(i64),
    MaxLen(usize),
    Threshold(u64),
}

/// Parses `name value` if `name` is a diagnostics parameter.
fn diagnostics_setting(
    name: &[u8],
    value: &[u8],
) -> Option<Result<DiagnosticsSetting, CommandError>> {
    let lower = name.to_ascii_lowercase();
    let (min, max) = match &lower[..] {
        b"slowlog-log-slower-than" => (-1, i64::MAX),
        b"slowlog-max-len" => (0, crate::server::stats::slowlog::MAX_MAX_LEN as i64),
        b"latency-monitor-threshold" => (0, i64::MAX),
        _ => return None,
    };
    let failed = |reason: String| CommandError::ConfigSetFailed {
        name: String::from_utf8_lossy(name).into_owned(),
        reason,
    };
    let Some(n) = crate::server::command::parse_i64(value) else {
        return Some(Err(failed(
            "argument couldn't be parsed into an integer".into(),
        )));
    };
    if !(min..=max).contains(&n) {
        return Some(Err(failed(format!(
            "argument must be between {min} and {max} inclusive"
        ))));
    }
    Some(Ok(match &lower[..] {
        b"slowlog-log-slower-than" => DiagnosticsSetting::SlowerThan(n),
        b"slowlog-max-len" => DiagnosticsSetting::MaxLen(n as usize),
        _ => DiagnosticsSetting::Threshold(n as u64),
    }))
}

fn apply_diagnostics(env: &dyn Env, settings: &[DiagnosticsSetting]) {
    let Some(stats) = env.stats() else {
        return;
    };
    for setting in settings {
        match *setting {
            DiagnosticsSetting::SlowerThan(usec) => stats.slowlog.set_slower_than_usec(usec),
            DiagnosticsSetting::MaxLen(len) => stats.slowlog.set_max_len(len),
            DiagnosticsSetting::Threshold(ms) => stats.latency.set_threshold_ms(ms),
        }
    }
}

/// `busy-reply-threshold` (alias `lua-time-limit`): this node's, as Redis's
/// is one server's (`node::scripts`).
fn busy_reply_threshold_ms(env: &dyn Env) -> u64 {
    env.scripts().map_or(
        crate::node::scripts::DEFAULT_BUSY_REPLY_THRESHOLD_MS,
        |scripts| scripts.threshold_ms(),
    )
}

/// Parses a `busy-reply-threshold` value as Redis does (0 ..= LONG_MAX ms).
fn parse_busy_reply_threshold(name: &[u8], value: &[u8]) -> Result<u64, CommandError> {
    let failed = |reason: &str| CommandError::ConfigSetFailed {
        name: String::from_utf8_lossy(name).into_owned(),
        reason: reason.to_string(),
    };
    let ms = std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse::<i64>().ok())
        .ok_or_else(|| failed("argument couldn't be parsed into an integer"))?;
    u64::try_from(ms)
        .map_err(|_| failed("argument must be between 0 and 9223372036854775807 inclusive"))
}

/// Redis-style glob match, case-insensitive (CONFIG GET).
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    crate::kv::glob::matches(pattern, text, true)
}

pub fn config_get(_: &mut Session, env: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
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

/// Whether `name` is one of the client limits, which `CONFIG SET` changes
/// on this node only (as Redis's CONFIG SET changes one server).
fn is_client_limit(name: &[u8]) -> bool {
    [
        &b"client-output-buffer-limit"[..],
        b"client-query-buffer-limit",
        b"timeout",
        b"maxmemory-clients",
    ]
    .iter()
    .any(|known| name.eq_ignore_ascii_case(known))
}

/// `settings` with the client limit `name` set to `value`.
fn set_client_limit(
    mut settings: ClientSettings,
    name: &[u8],
    value: &[u8],
) -> Result<ClientSettings, CommandError> {
    let failed = |reason: String| CommandError::ConfigSetFailed {
        name: String::from_utf8_lossy(name).into_owned(),
        reason,
    };
    let text =
        std::str::from_utf8(value).map_err(|_| failed("argument must be a memory value".into()))?;
    let lower = name.to_ascii_lowercase();
    match &lower[..] {
        b"client-output-buffer-limit" => {
            settings.output = settings
                .output
                .with(text)
                .map_err(|error| failed(error.to_string()))?;
        }
        b"client-query-buffer-limit" => {
            let bytes = parse_memory(text)
                .ok_or_else(|| failed("argument must be a memory value".into()))?;
            if bytes < MIN_QUERY_BUFFER_LIMIT_BYTES || bytes > i64::MAX as u64 {
                return Err(failed(format!(
                    "argument must be between {MIN_QUERY_BUFFER_LIMIT_BYTES} and {} inclusive",
                    i64::MAX
                )));
            }
            settings.query_buffer_limit_bytes = bytes;
        }
        b"timeout" => {
            let seconds = text
                .parse::<i64>()
                .map_err(|_| failed("argument couldn't be parsed into an integer".into()))?;
            if !(0..=MAX_IDLE_TIMEOUT_SECONDS as i64).contains(&seconds) {
                return Err(failed(format!(
                    "argument must be between 0 and {MAX_IDLE_TIMEOUT_SECONDS} inclusive"
                )));
            }
            settings.idle_timeout_seconds = seconds as u64;
        }
        _ => {
            settings.maxmemory_clients = MaxMemoryClients::parse(text)
                .ok_or_else(|| failed("argument must be a memory or percent value".into()))?;
        }
    }
    Ok(settings)
}

/// `CONFIG SET`: `maxmemory` and `maxmemory-policy` are replicated (one log
/// entry, so every replica enforces the same limit); the client limits are
/// this node's own and change at once; others are refused. Every value is
/// checked before any is applied.
pub fn config_set(_: &mut Session, env: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    if args.len() % 2 == 1 || args.len() < 4 {
        return Err(CommandError::WrongArity { name: "config|set" });
    }
    // `requirepass` alone: the default user's password, replicated as an
    // ACL change (as Redis: resetpass, then the password or nopass).
    if args.len() == 4 && args[2].eq_ignore_ascii_case(b"requirepass") {
        return Ok(Action::Write(Op::Acl(crate::acl::AclOp::SetUser {
            name: Bytes::from_static(b"default"),
            rules: crate::acl::user::requirepass_rules(&args[3]),
        })));
    }
    let current = env.client_limits().map(ClientLimits::settings);
    let mut client = current;
    let mut replicated = args[..2].to_vec();
    let mut diagnostics = Vec::new();
    let mut busy_reply_threshold = None;
    let mut tracking_max_keys = None;
    for pair in args[2..].chunks(2) {
        let name = &pair[0];
        if let Some(setting) = diagnostics_setting(name, &pair[1]) {
            diagnostics.push(setting?);
        } else if name.eq_ignore_ascii_case(b"busy-reply-threshold")
            || name.eq_ignore_ascii_case(b"lua-time-limit")
        {
            busy_reply_threshold = Some(parse_busy_reply_threshold(name, &pair[1])?);
        } else if name.eq_ignore_ascii_case(b"tracking-table-max-keys") {
            // This node's own, as each Redis server's is (Redis's range).
            tracking_max_keys = Some(parse_busy_reply_threshold(name, &pair[1])?);
        } else if is_client_limit(name) {
            let Some(settings) = client else {
                return Err(CommandError::UnknownConfig(preview(name, 128)));
            };
            client = Some(set_client_limit(settings, name, &pair[1])?);
        } else if name.eq_ignore_ascii_case(b"maxmemory")
            || name.eq_ignore_ascii_case(b"maxmemory-policy")
            || name.eq_ignore_ascii_case(b"notify-keyspace-events")
        {
            replicated.extend_from_slice(pair);
        } else {
            return Err(CommandError::UnknownConfig(preview(name, 128)));
        }
    }
    if let (Some(limits), Some(settings)) = (env.client_limits(), client) {
        if client != current {
            limits.set(settings);
        }
    }
    apply_diagnostics(env, &diagnostics);
    if let (Some(scripts), Some(ms)) = (env.scripts(), busy_reply_threshold) {
        scripts.set_threshold_ms(ms);
    }
    if let (Some(hub), Some(keys)) = (env.tracking(), tracking_max_keys) {
        hub.set_max_keys(keys);
    }
    if replicated.len() == 2 {
        return Ok(Action::Reply(Reply::OK));
    }
    Ok(Action::Write(Op::Exec {
        db: 0,
        args: replicated,
    }))
}

/// `CONFIG RESETSTAT`: this node's command, error, latency and traffic
/// statistics and its keyspace hits and misses start again from zero.
pub fn config_resetstat(
    _: &mut Session,
    env: &dyn Env,
    _: &[Bytes],
) -> Result<Action, CommandError> {
    env.reset_stats();
    Ok(Action::Reply(Reply::OK))
}

pub fn config_help(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    help(&[
        "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GET <pattern>",
        "    Return parameters matching the glob-like <pattern> and their values.",
        "SET <directive> <value>",
        "    Set the configuration <directive> to <value> (maxmemory, maxmemory-policy,",
        "    and this node's client-output-buffer-limit, client-query-buffer-limit,",
        "    timeout, maxmemory-clients, slowlog-log-slower-than, slowlog-max-len,",
        "    latency-monitor-threshold, busy-reply-threshold).",
        "RESETSTAT",
        "    Reset statistics reported by the INFO command (this node's).",
        "HELP",
        "    Print this help.",
    ])
}

// ---- INFO, TIME, LASTSAVE -------------------------------------------------

pub fn info(_: &mut Session, env: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    let requested: Vec<&[u8]> = args[1..].iter().map(|a| &a[..]).collect();
    let sections = info::select_sections(&requested);
    let status = env.status();
    let membership = env.membership();
    let text = info::render(
        &sections,
        &InfoInput {
            facts: env.facts(),
            status: &status,
            kv: &env.kv_info(),
            connected_clients: env.connected_clients(),
            blocked_clients: env.key_waits().map_or(0, |waits| waits.count()),
            tracking: env.tracking().map(|hub| hub.figures()).unwrap_or_default(),
            client_stats: env.client_limits().map(|limits| &limits.stats),
            stats: env.stats().map(|stats| &**stats),
            members: membership.as_ref().map_or(&[], |m| &m.members[..]),
            failover_running: env.failover_running(),
        },
    );
    Ok(Action::Reply(Reply::Verbatim(text)))
}

fn unix_now() -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

pub fn time(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    let now = unix_now();
    Ok(Action::Reply(Reply::Array(vec![
        Reply::bulk(now.as_secs().to_string()),
        Reply::bulk(now.subsec_micros().to_string()),
    ])))
}

/// When this node last wrote a snapshot (or installed one from the
/// leader), else when it started: Redis's last successful save.
pub fn lastsave(_: &mut Session, env: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    let at = info::last_save_unix_secs(env.facts());
    Ok(Action::Reply(Reply::Integer(
        i64::try_from(at).unwrap_or(i64::MAX),
    )))
}

/// `LOLWUT [VERSION v] [...]`: the version line Redis 7 prints, as a
/// verbatim string. Redis draws art for `VERSION 5` and `6`; dkv prints the
/// line for every version.
pub fn lolwut(_: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    if args.len() >= 3 && args[1].eq_ignore_ascii_case(b"version") {
        crate::server::command::parse_i64(&args[2]).ok_or(CommandError::NotInteger)?;
    }
    Ok(Action::Reply(Reply::Verbatim(format!(
        "Redis ver. {}\n",
        info::REDIS_COMPAT_VERSION
    ))))
}

// ---- MODULE ----------------------------------------------------------------

/// `MODULE LIST`: dkv loads no modules.
pub fn module_list(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    Ok(Action::Reply(Reply::Array(vec![])))
}

/// `MODULE LOAD`, `LOADEX`, `UNLOAD`: refused with the text Redis gives under
/// its default `enable-module-command no`, which dkv cannot change: a module
/// is native code, and each replica would have to run the same one.
pub fn module_refused(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    Err(CommandError::err(
        "MODULE command not allowed. If the enable-module-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.",
    ))
}

pub fn module_help(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    help(&[
        "MODULE <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "LIST",
        "    Return a list of loaded modules.",
        "LOAD <path> [<arg> ...]",
        "    Load a module library from <path>, passing to it any optional arguments.",
        "LOADEX <path> [[CONFIG NAME VALUE] [CONFIG NAME VALUE]] [ARGS ...]",
        "    Load a module library from <path>, while passing it module configurations and optional arguments.",
        "UNLOAD <name>",
        "    Unload a module.",
        "HELP",
        "    Prints this help.",
    ])
}

#[cfg(test)]
mod getkeys_tests {
    use bytes::Bytes;

    use crate::server::command::fake::FakeBackend;
    use crate::server::command::{execute, Session};
    use crate::server::reply::Reply;

    fn run(line: &str) -> Reply {
        let backend = FakeBackend::new();
        let mut session = Session::new(1, None, None);
        let args: Vec<Bytes> = line
            .split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect();
        futures_util::FutureExt::now_or_never(execute(&backend, &mut session, &args))
            .expect("the fake backend never waits")
            .reply
    }

    fn keys(names: &[&str]) -> Reply {
        Reply::Array(names.iter().map(|k| Reply::bulk_str(k)).collect())
    }

    /// Replies and errors as Redis 7.0.15 gives them.
    #[test]
    fn getkeys_reads_the_definitions() {
        assert_eq!(run("COMMAND GETKEYS SET a b"), keys(&["a"]));
        assert_eq!(run("COMMAND GETKEYS mset a 1 b 2"), keys(&["a", "b"]));
        assert_eq!(run("COMMAND GETKEYS RENAME x y"), keys(&["x", "y"]));
        for (line, error) in [
            ("COMMAND GETKEYS nosuch a", "ERR Invalid command specified"),
            (
                "COMMAND GETKEYS get a b",
                "ERR Invalid number of arguments specified for command",
            ),
            (
                "COMMAND GETKEYS ping x",
                "ERR The command has no key arguments",
            ),
            (
                "COMMAND GETKEYS ping",
                "ERR wrong number of arguments for 'command|getkeys' command",
            ),
            (
                "COMMAND GETKEYS get",
                "ERR wrong number of arguments for 'command|getkeys' command",
            ),
        ] {
            assert_eq!(run(line), Reply::Error(error.into()), "{line}");
        }
    }
}
