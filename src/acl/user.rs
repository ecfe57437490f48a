//! The user model: what `ACL SETUSER` rules do to a user, how a user is
//! described back (`ACL LIST`, `ACL GETUSER`), and the replicated operations
//! on the set of users ([`AclOp`], applied by [`Users::apply`]).
//!
//! Invariants:
//! - Passwords are kept only as lower-case hex SHA-256 hashes; the server
//!   turns `>password` / `<password` into `#hash` / `!hash` before a rule is
//!   proposed ([`hash_rules`]), so no plain password reaches the log.
//! - A `SETUSER` is atomic: its rules are applied to a copy, and the user is
//!   replaced only if every rule was valid.
//! - Command permissions are kept by full command name (`get`,
//!   `client|kill`), not by table position, so a snapshot stays meaningful
//!   when the command table grows. Category rules are expanded against the
//!   static command table when applied, which is the same on every node.
//! - The `default` user always exists.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::categories::{Categories, KeyAccess, CATEGORY_NAMES};
use crate::cmd::COMMANDS;

/// Why an `ACL SETUSER` rule was refused; `Display` is Redis's text (the
/// part after `Error in ACL SETUSER modifier '...': `).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// A rule that does not parse.
    #[error("Syntax error")]
    Syntax,
    /// `+cmd` / `+@cat` naming nothing dkv has.
    #[error("Unknown command or category name in ACL")]
    UnknownCommand,
    /// A key pattern after `allkeys`.
    #[error("Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns")]
    AfterAllKeys,
    /// A channel pattern after `allchannels`.
    #[error("Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels")]
    AfterAllChannels,
    /// `<pass` / `!hash` for a password the user does not have.
    #[error("The password you are trying to remove from the user does not exist")]
    NoSuchPassword,
    /// `#hash` / `!hash` that is not 64 lower-case hex digits.
    #[error("The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters")]
    BadHash,
    /// `+cmd|sub|arg`.
    #[error("Allowing first-arg of a subcommand is not supported")]
    FirstArgOfSubcommand,
    /// Something Redis has that dkv does not (selectors, first-arg rules).
    #[error("Syntax error (not supported by dkv)")]
    Unsupported,
}

/// A key pattern with the access it grants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPattern {
    /// Reading values of matching keys.
    pub read: bool,
    /// Changing matching keys.
    pub write: bool,
    /// Redis glob pattern.
    pub pattern: Bytes,
}

impl KeyPattern {
    /// The access this pattern grants.
    pub fn access(&self) -> KeyAccess {
        let mut access = KeyAccess::NONE;
        if self.read {
            access = access.or(KeyAccess::R);
        }
        if self.write {
            access = access.or(KeyAccess::W);
        }
        access
    }
}

/// `sanitize-payload` / `skip-sanitize-payload` (kept only to describe the
/// user as Redis does; dkv has no RESTORE).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sanitize {
    /// Neither flag set.
    #[default]
    Unset,
    /// `sanitize-payload`.
    Sanitize,
    /// `skip-sanitize-payload`.
    Skip,
}

/// One ACL user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// `on` (may authenticate) or `off`.
    pub enabled: bool,
    /// `nopass`: any password authenticates.
    pub nopass: bool,
    /// Lower-case hex SHA-256 hashes, in the order added.
    pub passwords: Vec<String>,
    /// Payload sanitisation flag.
    pub sanitize: Sanitize,
    /// `allkeys` / `~*`.
    pub all_keys: bool,
    /// Key patterns, in the order added (no duplicates).
    pub keys: Vec<KeyPattern>,
    /// `allchannels` / `&*`.
    pub all_channels: bool,
    /// Channel patterns, in the order added (no duplicates).
    pub channels: Vec<Bytes>,
    /// Set by `+@all`, cleared by `-@all`: described as `+@all ...`.
    pub future_commands: bool,
    /// Full names of the allowed commands and subcommands.
    pub allowed: BTreeSet<String>,
}

impl Default for User {
    /// A user as `ACL SETUSER name` creates it: off, no password, no keys, no
    /// channels, no commands.
    fn default() -> User {
        User {
            enabled: false,
            nopass: false,
            passwords: Vec::new(),
            sanitize: Sanitize::Unset,
            all_keys: false,
            keys: Vec::new(),
            all_channels: false,
            channels: Vec::new(),
            future_commands: false,
            allowed: BTreeSet::new(),
        }
    }
}

/// The lower-case hex SHA-256 of `password` (what Redis stores).
pub fn hash_password(password: &[u8]) -> String {
    let digest = Sha256::digest(password);
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

fn valid_hash(hash: &[u8]) -> bool {
    hash.len() == 64 && hash.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn has_spaces(s: &[u8]) -> bool {
    s.iter().any(|&b| b.is_ascii_whitespace() || b == 0)
}

/// Replaces every `>password` by `#hash` and `<password` by `!hash`, so the
/// rules can go into the log without the passwords.
pub fn hash_rules(rules: &[Bytes]) -> Vec<Bytes> {
    rules
        .iter()
        .map(|rule| match rule.first() {
            Some(b'>') => Bytes::from(format!("#{}", hash_password(&rule[1..]))),
            Some(b'<') => Bytes::from(format!("!{}", hash_password(&rule[1..]))),
            _ => rule.clone(),
        })
        .collect()
}

/// The rules `requirepass <password>` stands for on the default user:
/// `resetpass` then the password's hash, or `nopass` for an empty one.
pub fn requirepass_rules(password: &[u8]) -> Vec<Bytes> {
    let last = if password.is_empty() {
        Bytes::from_static(b"nopass")
    } else {
        Bytes::from(format!("#{}", hash_password(password)))
    };
    vec![Bytes::from_static(b"resetpass"), last]
}

/// Sets or clears one command (and, for a container, all its subcommands).
fn change_command(allowed: &mut BTreeSet<String>, index: usize, allow: bool) {
    let spec = &COMMANDS[index];
    let names = std::iter::once(spec.name).chain(spec.subcommands.iter().map(|s| s.full_name));
    for name in names {
        if allow {
            allowed.insert(name.to_string());
        } else {
            allowed.remove(name);
        }
    }
}

fn change_one(allowed: &mut BTreeSet<String>, name: &'static str, allow: bool) {
    if allow {
        allowed.insert(name.to_string());
    } else {
        allowed.remove(name);
    }
}

/// `±@category` on a command set, as Redis does it: a command in the
/// category with all its subcommands, then each subcommand in it.
fn change_category(allowed: &mut BTreeSet<String>, category: Categories, allow: bool) {
    for (index, spec) in COMMANDS.iter().enumerate() {
        if spec.acl_categories.contains(category) {
            change_command(allowed, index, allow);
        }
        for sub in spec.subcommands {
            if sub.acl_categories.contains(category) {
                change_one(allowed, sub.full_name, allow);
            }
        }
    }
}

/// Every command and subcommand name.
pub(crate) fn all_names() -> impl Iterator<Item = &'static str> {
    COMMANDS.iter().flat_map(|spec| {
        std::iter::once(spec.name).chain(spec.subcommands.iter().map(|s| s.full_name))
    })
}

/// How many distinct names [`all_names`] gives.
fn every_name_count() -> usize {
    static COUNT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *COUNT.get_or_init(|| all_names().collect::<BTreeSet<_>>().len())
}

/// A command or `command|subcommand` by name, as `(table index, full name)`.
fn find_command(name: &[u8]) -> Option<(usize, Option<&'static str>)> {
    let text = std::str::from_utf8(name).ok()?;
    let (parent, sub) = match text.split_once('|') {
        Some((p, s)) => (p, Some(s)),
        None => (text, None),
    };
    let (index, spec) = COMMANDS
        .iter()
        .enumerate()
        .find(|(_, spec)| spec.name.eq_ignore_ascii_case(parent))?;
    match sub {
        None => Some((index, None)),
        Some(sub) => spec
            .subcommands
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(sub))
            .map(|s| (index, Some(s.full_name))),
    }
}

fn eq(rule: &[u8], word: &str) -> bool {
    rule.eq_ignore_ascii_case(word.as_bytes())
}

impl User {
    /// The `default` user of a fresh server: `on nopass ~* &* +@all`.
    pub fn new_default() -> User {
        let mut user = User {
            enabled: true,
            nopass: true,
            all_keys: true,
            all_channels: true,
            ..User::default()
        };
        user.allow_all(true);
        user
    }

    fn allow_all(&mut self, allow: bool) {
        self.future_commands = allow;
        self.allowed.clear();
        if allow {
            self.allowed.extend(all_names().map(str::to_string));
        }
    }

    /// True if `password` authenticates this user (enabled, and nopass or a
    /// matching hash).
    pub fn accepts(&self, password: &[u8]) -> bool {
        if !self.enabled {
            return false;
        }
        if self.nopass {
            return true;
        }
        let hash = hash_password(password);
        self.passwords.contains(&hash)
    }

    /// True if the command or subcommand `full_name` (a name from the
    /// command table) is allowed.
    pub fn may_run(&self, full_name: &str) -> bool {
        // Every name comes from the command table, so a set of all of them
        // (the default user's `+@all`) is known by its size: no walk of
        // ~400 names per request.
        self.allowed.len() == every_name_count() || self.allowed.contains(full_name)
    }

    /// True if `key` may be accessed with `access`.
    pub fn may_access_key(&self, key: &[u8], access: KeyAccess) -> bool {
        self.all_keys
            || self.keys.iter().any(|p| {
                p.access().contains(access) && crate::kv::glob::matches(&p.pattern, key, false)
            })
    }

    /// True if `channel` may be used.
    pub fn may_use_channel(&self, channel: &[u8]) -> bool {
        self.all_channels
            || self
                .channels
                .iter()
                .any(|p| crate::kv::glob::matches(p, channel, false))
    }

    /// Applies one `ACL SETUSER` rule (passwords already hashed or not).
    ///
    /// # Errors
    /// [`RuleError`] when the rule is not valid; the user may then be half
    /// changed (callers apply rules to a copy).
    pub fn apply_rule(&mut self, rule: &[u8]) -> Result<(), RuleError> {
        if rule.is_empty() {
            return Ok(());
        }
        if eq(rule, "on") {
            self.enabled = true;
        } else if eq(rule, "off") {
            self.enabled = false;
        } else if eq(rule, "skip-sanitize-payload") {
            self.sanitize = Sanitize::Skip;
        } else if eq(rule, "sanitize-payload") {
            self.sanitize = Sanitize::Sanitize;
        } else if eq(rule, "nopass") {
            self.nopass = true;
            self.passwords.clear();
        } else if eq(rule, "resetpass") {
            self.nopass = false;
            self.passwords.clear();
        } else if rule[0] == b'>' || rule[0] == b'#' {
            let hash = if rule[0] == b'>' {
                hash_password(&rule[1..])
            } else if valid_hash(&rule[1..]) {
                String::from_utf8_lossy(&rule[1..]).into_owned()
            } else {
                return Err(RuleError::BadHash);
            };
            if !self.passwords.contains(&hash) {
                self.passwords.push(hash);
            }
            self.nopass = false;
        } else if rule[0] == b'<' || rule[0] == b'!' {
            let hash = if rule[0] == b'<' {
                hash_password(&rule[1..])
            } else if valid_hash(&rule[1..]) {
                String::from_utf8_lossy(&rule[1..]).into_owned()
            } else {
                return Err(RuleError::BadHash);
            };
            let at = self
                .passwords
                .iter()
                .position(|p| *p == hash)
                .ok_or(RuleError::NoSuchPassword)?;
            self.passwords.remove(at);
        } else if rule[0] == b'(' && rule[rule.len() - 1] == b')' {
            return Err(RuleError::Unsupported);
        } else if eq(rule, "clearselectors") {
            // dkv users have only the root selector.
        } else if eq(rule, "reset") {
            self.nopass = false;
            self.passwords.clear();
            self.all_keys = false;
            self.keys.clear();
            self.all_channels = false;
            self.channels.clear();
            self.enabled = false;
            self.sanitize = Sanitize::Sanitize;
            self.allow_all(false);
        } else {
            self.apply_selector_rule(rule)?;
        }
        Ok(())
    }

    fn apply_selector_rule(&mut self, rule: &[u8]) -> Result<(), RuleError> {
        if eq(rule, "allkeys") || rule == b"~*" {
            self.all_keys = true;
            self.keys.clear();
        } else if eq(rule, "resetkeys") {
            self.all_keys = false;
            self.keys.clear();
        } else if eq(rule, "allchannels") || rule == b"&*" {
            self.all_channels = true;
            self.channels.clear();
        } else if eq(rule, "resetchannels") {
            self.all_channels = false;
            self.channels.clear();
        } else if eq(rule, "allcommands") || eq(rule, "+@all") {
            self.allow_all(true);
        } else if eq(rule, "nocommands") || eq(rule, "-@all") {
            self.allow_all(false);
        } else if rule[0] == b'~' || rule[0] == b'%' {
            if self.all_keys {
                return Err(RuleError::AfterAllKeys);
            }
            let (read, write, pattern) = if rule[0] == b'%' {
                let (mut read, mut write) = (false, false);
                let mut at = 1;
                loop {
                    match rule.get(at).map(u8::to_ascii_uppercase) {
                        Some(b'R') if !read => read = true,
                        Some(b'W') if !write => write = true,
                        Some(b'~') => {
                            at += 1;
                            break;
                        }
                        // `%R` alone: the pattern is what follows (nothing).
                        None => break,
                        _ => return Err(RuleError::Syntax),
                    }
                    at += 1;
                }
                if !read && !write {
                    return Err(RuleError::Syntax);
                }
                (read, write, &rule[at..])
            } else {
                (true, true, &rule[1..])
            };
            if has_spaces(pattern) {
                return Err(RuleError::Syntax);
            }
            match self.keys.iter_mut().find(|p| p.pattern[..] == *pattern) {
                Some(existing) => {
                    existing.read |= read;
                    existing.write |= write;
                }
                None => self.keys.push(KeyPattern {
                    read,
                    write,
                    pattern: Bytes::copy_from_slice(pattern),
                }),
            }
        } else if rule[0] == b'&' {
            if self.all_channels {
                return Err(RuleError::AfterAllChannels);
            }
            let pattern = &rule[1..];
            if has_spaces(pattern) {
                return Err(RuleError::Syntax);
            }
            if !self.channels.iter().any(|c| c[..] == *pattern) {
                self.channels.push(Bytes::copy_from_slice(pattern));
            }
        } else if rule.len() > 1 && (rule[0] == b'+' || rule[0] == b'-') && rule[1] == b'@' {
            let category = Categories::by_name(&rule[2..]).ok_or(RuleError::UnknownCommand)?;
            change_category(&mut self.allowed, category, rule[0] == b'+');
        } else if rule[0] == b'+' || rule[0] == b'-' {
            let allow = rule[0] == b'+';
            let name = &rule[1..];
            let pipes = name.iter().filter(|&&b| b == b'|').count();
            if allow && pipes >= 1 {
                let parent = &name[..name.iter().position(|&b| b == b'|').unwrap_or(0)];
                let last = name.iter().rposition(|&b| b == b'|').unwrap_or(0);
                if find_command(parent).is_none() && pipes == 1 {
                    return Err(RuleError::UnknownCommand);
                }
                if pipes > 1 {
                    // `+client|kill|x`: the part before the last `|` must be a
                    // command; a subcommand's first argument is not supported.
                    return match find_command(&name[..last]) {
                        Some((_, Some(_))) => Err(RuleError::FirstArgOfSubcommand),
                        _ => Err(RuleError::UnknownCommand),
                    };
                }
                if last + 1 == name.len() {
                    return Err(RuleError::Syntax);
                }
            }
            match find_command(name) {
                Some((index, None)) => change_command(&mut self.allowed, index, allow),
                Some((_, Some(full))) => change_one(&mut self.allowed, full, allow),
                None if allow && pipes == 1 => {
                    // `+select|0`: a first argument of a command without
                    // subcommands (deprecated in Redis): not in dkv.
                    let parent = &name[..name.iter().position(|&b| b == b'|').unwrap_or(0)];
                    return match find_command(parent) {
                        Some((index, None)) if COMMANDS[index].subcommands.is_empty() => {
                            Err(RuleError::Unsupported)
                        }
                        _ => Err(RuleError::UnknownCommand),
                    };
                }
                None => return Err(RuleError::UnknownCommand),
            }
        } else {
            return Err(RuleError::Syntax);
        }
        Ok(())
    }

    /// The flags as `ACL GETUSER` / `ACL LIST` show them.
    pub fn flags(&self) -> Vec<&'static str> {
        let mut flags = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            flags.push("nopass");
        }
        match self.sanitize {
            Sanitize::Unset => {}
            Sanitize::Skip => flags.push("skip-sanitize-payload"),
            Sanitize::Sanitize => flags.push("sanitize-payload"),
        }
        flags
    }

    /// The key patterns as `ACL GETUSER` shows them (`~* `, `~a %R~b`).
    pub fn describe_keys(&self) -> String {
        if self.all_keys {
            return "~*".to_string();
        }
        self.keys
            .iter()
            .map(|p| {
                let prefix = match (p.read, p.write) {
                    (true, false) => "%R~",
                    (false, true) => "%W~",
                    _ => "~",
                };
                format!("{prefix}{}", String::from_utf8_lossy(&p.pattern))
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The channel patterns as `ACL GETUSER` shows them.
    pub fn describe_channels(&self) -> String {
        if self.all_channels {
            return "&*".to_string();
        }
        self.channels
            .iter()
            .map(|c| format!("&{}", String::from_utf8_lossy(c)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The command rules, found as Redis finds them: start from `+@all` or
    /// `-@all`, add the categories that fit best, then the single commands
    /// that still differ.
    pub fn describe_commands(&self) -> String {
        let additive = !self.future_commands;
        let mut rules = vec![if additive { "-@all" } else { "+@all" }.to_string()];
        let mut fake = User::default();
        fake.allow_all(!additive);
        // `temp` starts as the user; each applied category is undone on it.
        let mut temp = self.allowed.clone();
        let mut applied = [false; CATEGORY_NAMES.len()];
        loop {
            let mut best = None;
            let (mut min_diff, mut max_same) = (usize::MAX, 0);
            for (i, name) in CATEGORY_NAMES.iter().enumerate() {
                if applied[i] {
                    continue;
                }
                let category = Categories::by_name(name.as_bytes()).unwrap_or_default();
                let (on, off) = count_category(&temp, category);
                let (diff, same) = if additive { (off, on) } else { (on, off) };
                if same > diff && (diff < min_diff || (diff == min_diff && same > max_same)) {
                    best = Some((i, category));
                    min_diff = diff;
                    max_same = same;
                }
            }
            let Some((i, category)) = best else { break };
            change_category(&mut fake.allowed, category, additive);
            change_category(&mut temp, category, !additive);
            rules.push(format!(
                "{}@{}",
                if additive { '+' } else { '-' },
                CATEGORY_NAMES[i]
            ));
            applied[i] = true;
        }
        for (index, spec) in COMMANDS.iter().enumerate() {
            let user_bit = self.allowed.contains(spec.name);
            if user_bit != fake.allowed.contains(spec.name) {
                rules.push(format!("{}{}", if user_bit { '+' } else { '-' }, spec.name));
                change_command(&mut fake.allowed, index, user_bit);
            }
            for sub in spec.subcommands {
                let user_bit = self.allowed.contains(sub.full_name);
                if user_bit != fake.allowed.contains(sub.full_name) {
                    rules.push(format!(
                        "{}{}",
                        if user_bit { '+' } else { '-' },
                        sub.full_name
                    ));
                    change_one(&mut fake.allowed, sub.full_name, user_bit);
                }
            }
        }
        rules.join(" ")
    }

    /// The user's `ACL LIST` line after `user <name> `.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.flags().iter().map(|f| f.to_string()).collect();
        parts.extend(self.passwords.iter().map(|p| format!("#{p}")));
        if self.all_keys {
            parts.push("~*".to_string());
        } else if !self.keys.is_empty() {
            parts.push(self.describe_keys());
        }
        if self.all_channels {
            parts.push("&*".to_string());
        } else {
            parts.push("resetchannels".to_string());
            if !self.channels.is_empty() {
                parts.push(self.describe_channels());
            }
        }
        parts.push(self.describe_commands());
        parts.join(" ")
    }
}

/// `(on, off)`: commands and subcommands of `category` allowed / not in `set`.
fn count_category(set: &BTreeSet<String>, category: Categories) -> (usize, usize) {
    let (mut on, mut off) = (0, 0);
    let mut count = |name: &str| {
        if set.contains(name) {
            on += 1;
        } else {
            off += 1;
        }
    };
    for spec in COMMANDS.iter() {
        if spec.acl_categories.contains(category) {
            count(spec.name);
        }
        for sub in spec.subcommands {
            if sub.acl_categories.contains(category) {
                count(sub.full_name);
            }
        }
    }
    (on, off)
}

/// A change to the users, as it travels in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AclOp {
    /// `ACL SETUSER name rule ...` (passwords already hashed), also
    /// `CONFIG SET requirepass`.
    SetUser {
        /// User name.
        name: Bytes,
        /// Rules, applied in order to the user (a new one if absent).
        rules: Vec<Bytes>,
    },
    /// `ACL DELUSER name ...`.
    DelUser {
        /// Users to delete.
        names: Vec<Bytes>,
    },
    /// `ACL LOAD`: the users of an ACL file replace all users.
    Replace {
        /// `(name, rules)` per user, in file order.
        users: Vec<(Bytes, Vec<Bytes>)>,
    },
}

/// Why a replicated ACL operation was refused (the text after `ERR `).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    /// A rule that did not apply.
    #[error("Error in ACL SETUSER modifier '{rule}': {error}")]
    Rule {
        /// The rule as given (hashed if it was a password).
        rule: String,
        /// Why.
        error: RuleError,
    },
    /// A user name with a space or NUL.
    #[error("Usernames can't contain spaces or null characters")]
    BadName,
    /// `ACL DELUSER default`.
    #[error("The 'default' user cannot be removed")]
    DeleteDefault,
}

/// Every user, by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Users {
    users: BTreeMap<Bytes, User>,
}

impl Default for Users {
    /// Only the `default` user, as a fresh Redis has it.
    fn default() -> Users {
        let mut users = BTreeMap::new();
        users.insert(Bytes::from_static(b"default"), User::new_default());
        Users { users }
    }
}

/// Command names this version added to the table: a snapshot written
/// before snapshots named their commands (`kv/snapshot.rs`'s
/// `KnownCommands`) knew every name but these.
pub const NAMES_ADDED_WITH_KNOWN_COMMANDS: &[&str] = &[
    "save",
    "bgsave",
    "bgrewriteaof",
    "shutdown",
    "lolwut",
    "replicaof",
    "slaveof",
    "sync",
    "psync",
    "replconf",
    "restore-asking",
    "module",
    "module|help",
    "module|list",
    "module|load",
    "module|loadex",
    "module|unload",
];

impl Users {
    /// Gives each user holding `+@all` the commands added to the table
    /// after `known` was the whole table (a snapshot written by an older
    /// version): Redis's `+@all` covers commands that appear later, and the
    /// user's allowed set was computed against the older table. A user
    /// whose rules start from `-@all` gets none of them.
    pub fn grant_new_commands(&mut self, known: &BTreeSet<&str>) {
        let added: Vec<&'static str> = all_names().filter(|name| !known.contains(name)).collect();
        if added.is_empty() {
            return;
        }
        for user in self.users.values_mut() {
            if user.future_commands {
                user.allowed
                    .extend(added.iter().map(|name| name.to_string()));
            }
        }
    }

    /// Takes `names` out of every user's allowed commands (tests: users as
    /// an older command table left them).
    #[cfg(test)]
    pub(crate) fn forget_for_tests(&mut self, names: &[&str]) {
        for user in self.users.values_mut() {
            for name in names {
                user.allowed.remove(*name);
            }
        }
    }

    /// The user named `name`.
    pub fn get(&self, name: &[u8]) -> Option<&User> {
        self.users.get(name)
    }

    /// Users in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &User)> {
        self.users.iter()
    }

    /// The user `name` after `rules`, without changing anything.
    ///
    /// # Errors
    /// [`AclError`] for a bad name or the first bad rule.
    pub fn preview(&self, name: &[u8], rules: &[Bytes]) -> Result<User, AclError> {
        if has_spaces(name) {
            return Err(AclError::BadName);
        }
        let mut user = self.users.get(name).cloned().unwrap_or_default();
        for rule in rules {
            user.apply_rule(rule).map_err(|error| AclError::Rule {
                rule: String::from_utf8_lossy(rule).into_owned(),
                error,
            })?;
        }
        Ok(user)
    }

    /// Applies one replicated operation; `Ok(n)` is the number of users
    /// deleted for `DelUser`, 0 otherwise.
    ///
    /// # Errors
    /// [`AclError`]; nothing changed then.
    pub fn apply(&mut self, op: &AclOp) -> Result<usize, AclError> {
        match op {
            AclOp::SetUser { name, rules } => {
                let user = self.preview(name, rules)?;
                self.users.insert(name.clone(), user);
                Ok(0)
            }
            AclOp::DelUser { names } => {
                if names.iter().any(|n| &n[..] == b"default") {
                    return Err(AclError::DeleteDefault);
                }
                Ok(names
                    .iter()
                    .filter(|n| self.users.remove(&n[..]).is_some())
                    .count())
            }
            AclOp::Replace { users } => {
                let mut fresh = Users::default();
                for (name, rules) in users {
                    let user = if &name[..] == b"default" {
                        // The file's default user starts from scratch too.
                        let base = Users {
                            users: BTreeMap::new(),
                        };
                        base.preview(name, rules)?
                    } else {
                        fresh.preview(name, rules)?
                    };
                    fresh.users.insert(name.clone(), user);
                }
                *self = fresh;
                Ok(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(users: &mut Users, name: &str, rules: &[&str]) -> Result<usize, AclError> {
        users.apply(&AclOp::SetUser {
            name: Bytes::copy_from_slice(name.as_bytes()),
            rules: rules
                .iter()
                .map(|r| Bytes::copy_from_slice(r.as_bytes()))
                .collect(),
        })
    }

    #[test]
    fn default_user_is_described_as_redis_does() {
        let users = Users::default();
        let user = users.get(b"default").unwrap();
        assert_eq!(user.describe(), "on nopass ~* &* +@all");
        assert!(user.accepts(b"anything"));
        assert!(all_names().all(|name| user.may_run(name)));
    }

    #[test]
    fn rules_build_the_user_redis_describes() {
        let mut users = Users::default();
        set(
            &mut users,
            "u1",
            &[
                "on", ">p1", "~k*", "%R~r*", "&ch", "+get", "-@all", "+@string", "-set",
            ],
        )
        .unwrap();
        let u = users.get(b"u1").unwrap();
        assert_eq!(
            u.describe(),
            "on #f64551fcd6f07823cb87971cfb91446425da18286b3ab1ef935e0cbd7a69f68a ~k* %R~r* resetchannels &ch -@all +@string -set"
        );
        assert!(u.accepts(b"p1") && !u.accepts(b"p2"));
        assert!(u.may_run("get") && !u.may_run("set") && !u.may_run("hget"));
        assert!(u.may_access_key(b"kx", KeyAccess::RW));
        assert!(u.may_access_key(b"rx", KeyAccess::R));
        assert!(!u.may_access_key(b"rx", KeyAccess::W));
        assert!(!u.may_access_key(b"zz", KeyAccess::NONE));
        set(&mut users, "u2", &[]).unwrap();
        assert_eq!(
            users.get(b"u2").unwrap().describe(),
            "off resetchannels -@all"
        );
        set(&mut users, "u5", &["reset"]).unwrap();
        assert_eq!(
            users.get(b"u5").unwrap().describe(),
            "off sanitize-payload resetchannels -@all"
        );
    }

    #[test]
    fn subcommand_rules_and_containers() {
        let mut users = Users::default();
        set(&mut users, "a", &["+@all", "-client|kill"]).unwrap();
        let a = users.get(b"a").unwrap();
        assert_eq!(a.describe_commands(), "+@all -client|kill");
        assert!(a.may_run("client|list") && !a.may_run("client|kill"));
        set(&mut users, "b", &["+client"]).unwrap();
        assert!(users.get(b"b").unwrap().may_run("client|kill"));
        set(&mut users, "c", &["+config|get"]).unwrap();
        assert_eq!(
            users.get(b"c").unwrap().describe_commands(),
            "-@all +config|get"
        );
    }

    #[test]
    fn bad_rules_are_refused_with_redis_texts_and_change_nothing() {
        let mut users = Users::default();
        for (rules, text) in [
            (&["allkeys", "~x"][..], "Error in ACL SETUSER modifier '~x': Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns"),
            (&["%X~x"], "Error in ACL SETUSER modifier '%X~x': Syntax error"),
            (&["+nosuch"], "Error in ACL SETUSER modifier '+nosuch': Unknown command or category name in ACL"),
            (&["-@nosuch"], "Error in ACL SETUSER modifier '-@nosuch': Unknown command or category name in ACL"),
            (&["<nopw"], "Error in ACL SETUSER modifier '<nopw': The password you are trying to remove from the user does not exist"),
            (&["#abc"], "Error in ACL SETUSER modifier '#abc': The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters"),
            (&["+client|kill|x"], "Error in ACL SETUSER modifier '+client|kill|x': Allowing first-arg of a subcommand is not supported"),
            (&["bogus"], "Error in ACL SETUSER modifier 'bogus': Syntax error"),
        ] {
            let error = set(&mut users, "u3", rules).unwrap_err();
            assert_eq!(error.to_string(), text);
            assert!(users.get(b"u3").is_none(), "{rules:?} created the user");
        }
        assert_eq!(
            set(&mut users, "a b", &[]).unwrap_err().to_string(),
            "Usernames can't contain spaces or null characters"
        );
    }

    #[test]
    fn passwords_are_hashed_and_removable() {
        let mut users = Users::default();
        let rules = hash_rules(&[Bytes::from_static(b">secret")]);
        assert_eq!(
            rules[0][..],
            *format!("#{}", hash_password(b"secret")).as_bytes()
        );
        set(&mut users, "p", &["on", ">secret", ">other"]).unwrap();
        assert!(users.get(b"p").unwrap().accepts(b"other"));
        set(&mut users, "p", &["<other"]).unwrap();
        assert!(!users.get(b"p").unwrap().accepts(b"other"));
        set(&mut users, "p", &["off"]).unwrap();
        assert!(!users.get(b"p").unwrap().accepts(b"secret"));
        set(&mut users, "p", &["on", "nopass"]).unwrap();
        assert!(users.get(b"p").unwrap().accepts(b"x"));
    }

    #[test]
    fn deluser_and_replace() {
        let mut users = Users::default();
        set(&mut users, "a", &[]).unwrap();
        assert_eq!(
            users
                .apply(&AclOp::DelUser {
                    names: vec!["default".into()]
                })
                .unwrap_err(),
            AclError::DeleteDefault
        );
        assert_eq!(
            users
                .apply(&AclOp::DelUser {
                    names: vec!["nosuch".into(), "a".into()]
                })
                .unwrap(),
            1
        );
        users
            .apply(&AclOp::Replace {
                users: vec![("b".into(), vec!["on".into(), "nopass".into()])],
            })
            .unwrap();
        assert!(users.get(b"b").is_some() && users.get(b"default").is_some());
    }

    #[test]
    fn channel_patterns() {
        let mut users = Users::default();
        set(&mut users, "c", &["&news.*", "&news.*"]).unwrap();
        let c = users.get(b"c").unwrap();
        assert_eq!(c.describe_channels(), "&news.*");
        assert!(c.may_use_channel(b"news.x") && !c.may_use_channel(b"other"));
        assert!(set(&mut users, "c", &["allchannels", "&x"]).is_err());
    }
}
