//! `COMMAND DOCS` entries in Redis 7's shape: a map of `summary`, `since`,
//! `group`, `complexity` and `arguments` (each a map of `name`, `type`, and
//! `flags` when optional or repeated), and a container's `subcommands`.
//! Arguments are derived from the table's key positions and arity, enough
//! for redis-cli's interactive hints.

use crate::cmd::SubcommandSpec;
use crate::server::command::CommandSpec;
use crate::server::reply::Reply;

fn pair(k: &'static str, v: Reply) -> (Reply, Reply) {
    (Reply::bulk_str(k), v)
}

fn argument(name: &'static str, kind: &'static str, multiple: bool) -> Reply {
    let mut fields = vec![
        pair("name", Reply::bulk_str(name)),
        pair("type", Reply::bulk_str(kind)),
    ];
    if kind == "key" {
        fields.push(pair("key_spec_index", Reply::Integer(0)));
    }
    if multiple {
        fields.push(pair("flags", Reply::Array(vec![Reply::Simple("multiple")])));
    }
    Reply::Map(fields)
}

/// The row's value, or `default` for a row without docs yet.
fn or(value: &'static str, default: &'static str) -> &'static str {
    if value.is_empty() {
        default
    } else {
        value
    }
}

/// The docs of one command; a container's list its subcommands' docs, as
/// Redis's do.
pub fn doc(spec: &CommandSpec) -> Reply {
    let summary = if spec.summary.is_empty() {
        format!("The Redis {} command.", spec.name.to_ascii_uppercase())
    } else {
        spec.summary.to_string()
    };
    let mut fields = header(
        summary,
        or(spec.since, "1.0.0"),
        spec.group,
        spec.complexity,
    );
    if spec.subcommands.is_empty() {
        let keys = (spec.first_key, spec.last_key, spec.key_step);
        push_arguments(&mut fields, arguments(spec.arity, 1, keys));
    } else {
        fields.push(pair(
            "subcommands",
            Reply::Map(
                spec.subcommands
                    .iter()
                    .map(|sub| (Reply::bulk_str(sub.full_name), sub_doc(spec, sub)))
                    .collect(),
            ),
        ));
    }
    Reply::Map(fields)
}

/// The docs of a subcommand (`COMMAND DOCS config|get`, and inside its
/// container's): a row without its own docs yet takes its container's
/// version and group.
pub fn sub_doc(spec: &CommandSpec, sub: &SubcommandSpec) -> Reply {
    let summary = if sub.summary.is_empty() {
        format!(
            "The Redis {} command.",
            sub.full_name.replace('|', " ").to_ascii_uppercase()
        )
    } else {
        sub.summary.to_string()
    };
    let since = or(sub.since, or(spec.since, "1.0.0"));
    let mut fields = header(summary, since, spec.group, sub.complexity);
    push_arguments(&mut fields, arguments(sub.arity, 2, sub.keys));
    Reply::Map(fields)
}

/// `summary`, `since`, `group` and `complexity`.
fn header(
    summary: String,
    since: &'static str,
    group: &'static str,
    complexity: &'static str,
) -> Vec<(Reply, Reply)> {
    let group = group.trim_start_matches('@');
    vec![
        pair("summary", Reply::bulk(summary)),
        pair("since", Reply::bulk_str(since)),
        pair(
            "group",
            Reply::bulk_str(if group == "keyspace" {
                "generic"
            } else {
                group
            }),
        ),
        pair("complexity", Reply::bulk_str(or(complexity, "O(1)"))),
    ]
}

/// `arguments`, left out when there are none (as Redis leaves it out).
fn push_arguments(fields: &mut Vec<(Reply, Reply)>, arguments: Vec<Reply>) {
    if !arguments.is_empty() {
        fields.push(pair("arguments", Reply::Array(arguments)));
    }
}

/// Arguments derived from the arity and fixed key positions: the `names`
/// words that name the command (1, or 2 for a subcommand) are not
/// arguments.
fn arguments(arity: i32, names: usize, keys: (i64, i64, i64)) -> Vec<Reply> {
    let mut arguments = Vec::new();
    let required = (arity.unsigned_abs() as usize).saturating_sub(names);
    let variadic = arity < 0;
    if keys.0 == names as i64 {
        let many = keys.1 == -1 && keys.2 == 1;
        arguments.push(argument("key", "key", many));
        if keys.2 == 2 {
            arguments.push(argument("value", "string", false));
        }
    }
    while arguments.len() < required {
        let name = if arguments.len() + 1 == required && variadic {
            "arg"
        } else {
            "value"
        };
        arguments.push(argument(name, "string", false));
    }
    arguments
}
