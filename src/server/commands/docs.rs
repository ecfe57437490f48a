//! `COMMAND DOCS` entries in Redis 7's shape: a map of `summary`, `since`,
//! `group`, `complexity` and `arguments` (each a map of `name`, `type`, and
//! `flags` when optional or repeated). Arguments are derived from the table's
//! key positions and arity, enough for redis-cli's interactive hints.

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

/// The docs of one command.
pub fn doc(spec: &CommandSpec) -> Reply {
    let group = spec.group.trim_start_matches('@');
    let mut arguments = Vec::new();
    let required = spec.arity.unsigned_abs().saturating_sub(1) as usize;
    let variadic = spec.arity < 0;
    if spec.first_key == 1 {
        let many = spec.last_key == -1 && spec.key_step == 1;
        arguments.push(argument("key", "key", many));
        if spec.key_step == 2 {
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
    let summary = if spec.summary.is_empty() {
        format!("The Redis {} command.", spec.name.to_ascii_uppercase())
    } else {
        spec.summary.to_string()
    };
    Reply::Map(vec![
        pair("summary", Reply::bulk(summary)),
        pair("since", Reply::bulk_str(or(spec.since, "1.0.0"))),
        pair(
            "group",
            Reply::bulk_str(if group == "keyspace" {
                "generic"
            } else {
                group
            }),
        ),
        pair("complexity", Reply::bulk_str(or(spec.complexity, "O(1)"))),
        pair("arguments", Reply::Array(arguments)),
    ])
}
