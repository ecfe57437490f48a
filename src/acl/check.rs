//! The permission check a command passes before it is queued, proposed or
//! read: the command (or subcommand) must be allowed, and every key it names
//! must match one of the user's key patterns with the access the command
//! needs (Redis 7's `ACLCheckAllPerm`). Pure: the caller supplies the user
//! and the command's table row.

use bytes::Bytes;

use super::categories::KeyAccess;
use super::user::User;
use crate::server::command::CommandSpec;

/// Why a command was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denied {
    /// The command or subcommand is not allowed (its full name).
    Command(&'static str),
    /// A key is not matched (the argument position of the first such key).
    Key(usize),
    /// A channel is not matched (its argument position).
    Channel(usize),
}

/// The key positions of `args` for `spec` (its fixed range and any
/// `numkeys` keys), each with the access it needs.
pub fn key_positions(spec: &CommandSpec, args: &[Bytes]) -> Vec<(usize, KeyAccess)> {
    // `SET key value GET` returns the old value: a read too (Redis's
    // variable key-spec flags for SET).
    let set_get = spec.name == "set"
        && args
            .get(3..)
            .unwrap_or_default()
            .iter()
            .any(|a| a.eq_ignore_ascii_case(b"get"));
    // An impossible `numkeys` names no key: the command refuses it itself.
    let positions = spec.key_positions(args).unwrap_or_default();
    let first = positions.first().copied();
    positions
        .into_iter()
        .map(|at| {
            let access = if Some(at) == first {
                spec.first_key_access
            } else {
                spec.other_key_access
            };
            let access = if set_get {
                access.or(KeyAccess::R)
            } else {
                access
            };
            (at, access)
        })
        .collect()
}

/// Checks `args` (a command of row `spec`, subcommand `sub` if any) against
/// `user`.
///
/// # Errors
/// [`Denied`] says what was refused first: the command, then the first key.
pub fn check(
    user: &User,
    spec: &'static CommandSpec,
    full_name: &'static str,
    args: &[Bytes],
) -> Result<(), Denied> {
    // AUTH and HELLO are allowed to everyone (Redis's `no-auth` flag).
    let no_auth = matches!(spec.name, "auth" | "hello");
    if !no_auth && !user.may_run(full_name) {
        return Err(Denied::Command(full_name));
    }
    if !user.all_keys {
        for (at, access) in key_positions(spec, args) {
            if !user.may_access_key(&args[at], access) {
                return Err(Denied::Key(at));
            }
        }
    }
    Ok(())
}

/// True if `user` may reach every key with `access` (Redis's
/// `ACLUserCheckCmdWithUnrestrictedKeyAccess` for a command that already
/// passed [`check`]): `allkeys`/`~*`, or a pattern that is exactly `*` and
/// grants at least `access` (`%R~*` for reads). Commands that read keys
/// named by patterns in their arguments (SORT's `BY` and `GET`) need it,
/// since those keys cannot be checked one by one before the data is read.
/// dkv users have only Redis's root selector, so that is the one looked at.
pub fn unrestricted_key_access(user: &User, access: KeyAccess) -> bool {
    user.all_keys
        || user
            .keys
            .iter()
            .any(|p| p.pattern[..] == *b"*" && p.access().contains(access))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::user::{AclOp, Users};
    use crate::server::command::lookup;

    fn user(rules: &[&str]) -> User {
        let mut users = Users::default();
        users
            .apply(&AclOp::SetUser {
                name: "u".into(),
                rules: rules
                    .iter()
                    .map(|r| Bytes::copy_from_slice(r.as_bytes()))
                    .collect(),
            })
            .unwrap();
        users.get(b"u").unwrap().clone()
    }

    fn run(user: &User, args: &[&str]) -> Result<(), Denied> {
        let args: Vec<Bytes> = args
            .iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect();
        let (_, spec) = lookup(&args[0]).unwrap();
        let full = args
            .get(1)
            .and_then(|s| {
                spec.subcommands
                    .iter()
                    .find(|sub| s.eq_ignore_ascii_case(sub.name.as_bytes()))
            })
            .map_or(spec.name, |sub| sub.full_name);
        check(user, spec, full, &args)
    }

    #[test]
    fn commands_and_read_write_key_patterns() {
        let u = user(&["on", "+@all", "-flushall", "%R~r*", "%W~w*", "~both*"]);
        assert_eq!(run(&u, &["flushall"]), Err(Denied::Command("flushall")));
        assert_eq!(run(&u, &["get", "r1"]), Ok(()));
        assert_eq!(run(&u, &["get", "w1"]), Err(Denied::Key(1)));
        assert_eq!(run(&u, &["set", "w1", "v"]), Ok(()));
        assert_eq!(run(&u, &["set", "w1", "v", "GET"]), Err(Denied::Key(1)));
        assert_eq!(run(&u, &["set", "r1", "v"]), Err(Denied::Key(1)));
        assert_eq!(run(&u, &["incr", "w1"]), Err(Denied::Key(1)));
        assert_eq!(run(&u, &["incr", "both1"]), Ok(()));
        // EXISTS only looks at metadata: any pattern lets it through.
        assert_eq!(run(&u, &["exists", "w1"]), Ok(()));
        assert_eq!(
            run(&u, &["mset", "w1", "a", "r1", "b"]),
            Err(Denied::Key(3))
        );
        assert_eq!(run(&u, &["copy", "r1", "w1"]), Ok(()));
        assert_eq!(run(&u, &["copy", "w1", "r1"]), Err(Denied::Key(1)));
        assert_eq!(run(&u, &["mget", "r1", "both", "x"]), Err(Denied::Key(3)));
    }

    #[test]
    fn unrestricted_key_access_needs_a_star_pattern_with_the_access() {
        let read = KeyAccess::R;
        assert!(unrestricted_key_access(&user(&["allkeys"]), read));
        assert!(unrestricted_key_access(&user(&["~*"]), read));
        assert!(unrestricted_key_access(&user(&["~k*", "%R~*"]), read));
        assert!(unrestricted_key_access(&user(&["%RW~*"]), read));
        assert!(!unrestricted_key_access(&user(&["%W~*", "~k*"]), read));
        assert!(!unrestricted_key_access(&user(&["~k*"]), read));
        // Only the literal `*` counts, not a pattern that happens to match
        // every key.
        assert!(!unrestricted_key_access(&user(&["~**"]), read));
        assert!(!unrestricted_key_access(&user(&[]), read));
        assert!(unrestricted_key_access(&User::new_default(), read));
    }

    #[test]
    fn subcommands_and_no_auth_commands() {
        let u = user(&["on", "-@all", "+client|id"]);
        assert_eq!(run(&u, &["client", "id"]), Ok(()));
        assert_eq!(
            run(&u, &["client", "kill", "id", "1"]),
            Err(Denied::Command("client|kill"))
        );
        assert_eq!(run(&u, &["auth", "a", "b"]), Ok(()));
        assert_eq!(run(&u, &["ping"]), Err(Denied::Command("ping")));
    }
}
