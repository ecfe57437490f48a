//! Snapshots of the whole state machine, encoded incrementally.
//!
//! [`Db::snapshot_chunks`] takes a point-in-time copy (a clone: the keyspace's
//! trees are persistent, so this shares their nodes with the live map, which
//! copies a node only when a write lands in one still shared) and then encodes
//! it record by record, so the live map is never frozen during the write. The
//! encoding is a sequence of length-prefixed postcard records: one `Meta`
//! (replicated now, counters, stats, config, WATCH tombstones), one `Users`
//! (the ACL users; absent in snapshots written before ACLs, which then
//! restore with only the default user), one `PubSub` (the subscription
//! registry, only when someone subscribes), one `Notify` (the
//! `notify-keyspace-events` flags, only when some are on), one `Functions` (the
//! function libraries, only when there is one), then one `Entry` per key in database
//! then key order, then `End`. Identical states
//! give identical bytes (replicas can be compared byte for byte).
//! [`Db::restore`] rebuilds exactly the same state (local access info aside),
//! and refuses a snapshot whose keys are not in strictly increasing order
//! within each database.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::script::rand48::Rand48;
use super::{entry_bytes, Db, Entry, KvConfig, Stats, DATABASES};
use crate::acl::Users;

/// A key's entry as snapshots before 2026-12-06 wrote it: with its
/// creation sequence, which SCAN walked then (slots replaced it).
#[derive(Serialize, Deserialize)]
struct EntryV1 {
    value: super::Value,
    expires_at_ms: Option<u64>,
    version: u64,
    seq: u64,
}

#[derive(Serialize, Deserialize)]
enum Record {
    /// The meta of snapshots written before 2026-12-06 (read, never
    /// written): `next_seq` is ignored.
    MetaV1 {
        now_ms: u64,
        next_seq: u64,
        mod_counter: u64,
        tombstones: Vec<(u64, u8, Bytes)>,
        tombstone_horizon: u64,
        stats: Stats,
        config: KvConfig,
    },
    /// A key of a snapshot written before 2026-12-06, in key order (read,
    /// never written): restored at the next slot, so such a snapshot's
    /// keys come back in key order.
    EntryV1 {
        db: u8,
        key: Bytes,
        entry: EntryV1,
    },
    End,
    /// The ACL users. Written after `Meta` by snapshots since ACLs exist;
    /// a snapshot without it (older) restores with only the default user.
    Users(Users),
    /// The script cache (sha → body, in sha order) and `math.random`'s
    /// state. Written after `Users` once a script has run or been loaded; a
    /// snapshot without it restores with an empty cache and the start state.
    Scripts {
        /// `math.random`'s state (`Rand48::state`).
        rand: u64,
        /// sha → body.
        scripts: Vec<(String, Bytes)>,
    },
    /// The Pub/Sub registry (`kv/pubsub.rs`), written after `Users` when
    /// anyone subscribes: other nodes' subscriptions must survive a
    /// snapshot install, or PUBLISH would count differently here.
    PubSub(super::pubsub::Registry),
    /// `notify-keyspace-events` (`kv/notify.rs`), written after the others
    /// when not empty; a snapshot without it restores with notifications
    /// off.
    Notify(u32),
    /// The function libraries (`kv/functions.rs`), in name order, written
    /// after `Users` when there is one: a node that restarts or installs a
    /// snapshot has the same functions as the others.
    Functions(Vec<super::functions::Library>),
    /// The state's counters, the live tombstones, stats and config: first.
    Meta {
        now_ms: u64,
        mod_counter: u64,
        tombstones: Vec<(u64, u8, Bytes)>,
        tombstone_horizon: u64,
        stats: Stats,
        config: KvConfig,
    },
    /// One key, in slot order within its database.
    Entry {
        db: u8,
        key: Bytes,
        entry: Entry,
    },
    /// Every command name the writer's table had, written after `Users`:
    /// a user with `+@all` restored by a newer version gets the commands
    /// added since ([`Users::grant_new_commands`]). A snapshot without it
    /// was written before [`crate::acl::user::NAMES_ADDED_WITH_KNOWN_COMMANDS`]
    /// existed. New variants go last: variant indexes are the file format.
    KnownCommands(Vec<String>),
}

/// [`Record`] as written: the same variants in the same order, borrowing
/// what `Record` owns, so writing a snapshot does not clone the ACL users
/// (every command name each allows) or each key's value. Postcard encodes
/// a reference as its referent, so both give the same bytes (a test checks
/// every variant).
#[derive(Serialize)]
enum RecordOut<'a> {
    /// Only read (`Record::MetaV1`); here to keep the variant indexes.
    #[allow(dead_code)]
    MetaV1,
    /// Only read (`Record::EntryV1`); here to keep the variant indexes.
    #[allow(dead_code)]
    EntryV1,
    End,
    Users(&'a Users),
    Scripts {
        rand: u64,
        scripts: Vec<(&'a String, &'a Bytes)>,
    },
    PubSub(&'a super::pubsub::Registry),
    Notify(u32),
    Functions(Vec<&'a super::functions::Library>),
    Meta {
        now_ms: u64,
        mod_counter: u64,
        tombstones: Vec<(u64, u8, Bytes)>,
        tombstone_horizon: u64,
        stats: &'a Stats,
        config: &'a KvConfig,
    },
    Entry {
        db: u8,
        key: &'a super::key::Key,
        entry: &'a Entry,
    },
    KnownCommands(Vec<&'static str>),
}

/// The most a snapshot chunk's buffer is allocated with before it fills.
const MAX_PREALLOCATED_CHUNK: usize = 4 << 20;

/// The chunks of one snapshot (see the module docs).
pub struct SnapshotChunks {
    copy: Db,
    chunk_size: usize,
    /// Next database and the next slot to write in it.
    db: usize,
    slot: usize,
    started: bool,
    done: bool,
}

fn push(buf: &mut Vec<u8>, record: &impl Serialize) {
    // Encoded in place behind a length prefix filled in afterwards: no
    // allocation per record, byte strings copied as slices.
    let start = buf.len();
    buf.put_u32_le(0);
    *buf = crate::encode::append(record, std::mem::take(buf));
    let len = (buf.len() - start - 4) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

impl Iterator for SnapshotChunks {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        // Sized for the chunk (and a record's worth past it) so that it
        // does not grow by copying itself; a larger last record still can.
        let mut buf = Vec::with_capacity(self.chunk_size.min(MAX_PREALLOCATED_CHUNK) + 4096);
        if !self.started {
            self.started = true;
            let db = &self.copy;
            // Live tombstones only, oldest first.
            let tombstones: Vec<(u64, u8, Bytes)> = db.tombstone_log.iter().cloned().collect();
            push(
                &mut buf,
                &RecordOut::Meta {
                    now_ms: db.now_ms,
                    mod_counter: db.mod_counter,
                    tombstones,
                    tombstone_horizon: db.tombstone_horizon,
                    stats: &db.stats,
                    config: &db.config,
                },
            );
            push(&mut buf, &RecordOut::Users(&db.users));
            push(
                &mut buf,
                &RecordOut::KnownCommands(crate::acl::user::all_names().collect()),
            );
            // Only once scripting has left state, so a map that never ran a
            // script snapshots to the same bytes as before scripting existed.
            if !db.scripts.is_empty() || db.script_rand != Rand48::START {
                let scripts = db.scripts.iter().collect();
                push(
                    &mut buf,
                    &RecordOut::Scripts {
                        rand: db.script_rand.state(),
                        scripts,
                    },
                );
            }
            if !db.pubsub.is_empty() {
                push(&mut buf, &RecordOut::PubSub(&db.pubsub));
            }
            if db.notify_flags != 0 {
                push(&mut buf, &RecordOut::Notify(db.notify_flags));
            }
            if !db.functions.is_empty() {
                push(
                    &mut buf,
                    &RecordOut::Functions(db.functions.iter().collect()),
                );
            }
        }
        while buf.len() < self.chunk_size {
            if self.db >= DATABASES {
                push(&mut buf, &RecordOut::End);
                self.done = true;
                break;
            }
            // Slots in order: a restore puts every key back at its slot.
            let map = &self.copy.dbs[self.db].map;
            while let Some((key, entry)) = map.at(self.slot) {
                push(
                    &mut buf,
                    &RecordOut::Entry {
                        db: self.db as u8,
                        key,
                        entry,
                    },
                );
                self.slot += 1;
                if buf.len() >= self.chunk_size {
                    break;
                }
            }
            if self.slot >= map.len() {
                self.db += 1;
                self.slot = 0;
            }
        }
        Some(Bytes::from(buf))
    }
}

/// Adds one restored key to the next slot of its database, checking the
/// record's place: after the meta, databases in order.
fn add_entry(
    entries: &mut [Vec<(Bytes, Entry)>; DATABASES],
    last_db: &mut usize,
    saw_meta: bool,
    d: u8,
    key: Bytes,
    entry: Entry,
) -> Result<(), &'static str> {
    let d = usize::from(d);
    if !saw_meta || d >= DATABASES {
        return Err("entry before meta or bad database");
    }
    if d < *last_db {
        return Err("databases out of order");
    }
    *last_db = d;
    entries[d].push((key, entry));
    Ok(())
}

/// A snapshot that does not decode.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A record is cut short or malformed.
    #[error("snapshot record at byte {offset} does not decode: {reason}")]
    Corrupt {
        /// Byte offset of the record.
        offset: usize,
        /// What was wrong.
        reason: String,
    },
}

impl Db {
    /// A point-in-time copy of the state, encoded lazily in chunks of about
    /// `chunk_size_bytes` (a chunk ends after the record that reaches the size).
    pub fn snapshot_chunks(&self, chunk_size_bytes: usize) -> SnapshotChunks {
        let mut copy = self.clone();
        // The copy only walks its slots: dropping its share of each index
        // (and of the deadline index: each entry carries its deadline)
        // spares the live map a copy of the index at its next write.
        for ks in &mut copy.dbs {
            ks.map = ks.map.without_index();
            ks.expiring = super::deadlines::Deadlines::new();
        }
        SnapshotChunks {
            copy,
            chunk_size: chunk_size_bytes.max(1),
            db: 0,
            slot: 0,
            started: false,
            done: false,
        }
    }

    /// The whole snapshot as one buffer.
    pub fn snapshot_bytes(&self) -> Bytes {
        let mut all = BytesMut::new();
        for chunk in self.snapshot_chunks(1 << 20) {
            all.extend_from_slice(&chunk);
        }
        all.freeze()
    }

    /// Fills database `d` from its entries, in slot order; `Err(key)` if a
    /// key is repeated.
    fn restore_keyspace(&mut self, d: usize, entries: Vec<(Bytes, Entry)>) -> Result<(), Bytes> {
        let map = super::keymap::KeyMap::from_slots(entries)?;
        let mut expiring = Vec::new();
        for (key, entry) in map.iter() {
            if let Some(at) = entry.expires_at_ms() {
                expiring.push(super::Due::new(at, key.clone()));
            }
            self.used_bytes += entry_bytes(key, entry);
        }
        let ks = &mut self.dbs[d];
        ks.map = map;
        ks.expiring = expiring.into_iter().collect();
        Ok(())
    }

    /// Rebuilds the state from the concatenated chunks.
    ///
    /// # Errors
    /// [`SnapshotError`] on truncated or malformed input.
    pub fn restore(bytes: &[u8]) -> Result<Db, SnapshotError> {
        let mut db = Db::new();
        let mut offset = 0;
        let corrupt = |offset: usize, reason: &str| SnapshotError::Corrupt {
            offset,
            reason: reason.to_string(),
        };
        let mut saw_meta = false;
        let mut known: Option<Vec<String>> = None;
        // Each database's entries in slot order (as written); a repeated key
        // is refused when the database is rebuilt.
        let mut entries: [Vec<(Bytes, Entry)>; DATABASES] = std::array::from_fn(|_| Vec::new());
        let mut last_db = 0;
        loop {
            if bytes.len() < offset + 4 {
                return Err(corrupt(offset, "truncated before the end record"));
            }
            let len =
                u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes")) as usize;
            let body = bytes
                .get(offset + 4..offset + 4 + len)
                .ok_or_else(|| corrupt(offset, "truncated record"))?;
            let record: Record =
                postcard::from_bytes(body).map_err(|e| corrupt(offset, &e.to_string()))?;
            match record {
                Record::MetaV1 {
                    now_ms,
                    next_seq: _,
                    mod_counter,
                    tombstones,
                    tombstone_horizon,
                    stats,
                    config,
                }
                | Record::Meta {
                    now_ms,
                    mod_counter,
                    tombstones,
                    tombstone_horizon,
                    stats,
                    config,
                } => {
                    db.now_ms = now_ms;
                    db.mod_counter = mod_counter;
                    db.tombstone_horizon = tombstone_horizon;
                    db.stats = stats;
                    db.config = config;
                    // The log mirrors the map even if a (corrupt or hostile)
                    // snapshot names a key twice: the later one holds.
                    let mut map = imbl::OrdMap::new();
                    let mut log = imbl::OrdSet::new();
                    for (at, d, k) in tombstones {
                        if let Some(older) = map.insert((d, k.clone()), at) {
                            log.remove(&(older, d, k.clone()));
                        }
                        log.insert((at, d, k));
                    }
                    db.tombstones = map;
                    db.tombstone_log = log;
                    saw_meta = true;
                }
                Record::EntryV1 { db: d, key, entry } => {
                    let entry = Entry::new(entry.value, entry.expires_at_ms, entry.version);
                    add_entry(&mut entries, &mut last_db, saw_meta, d, key, entry)
                        .map_err(|reason| corrupt(offset, reason))?;
                }
                Record::Entry { db: d, key, entry } => {
                    add_entry(&mut entries, &mut last_db, saw_meta, d, key, entry)
                        .map_err(|reason| corrupt(offset, reason))?;
                }
                Record::Users(users) => {
                    if !saw_meta {
                        return Err(corrupt(offset, "users before meta"));
                    }
                    db.users = std::sync::Arc::new(users);
                }
                Record::KnownCommands(names) => {
                    known = Some(names);
                }
                Record::Scripts { rand, scripts } => {
                    if !saw_meta {
                        return Err(corrupt(offset, "scripts before meta"));
                    }
                    db.script_rand = super::script::rand48::Rand48::from_state(rand);
                    for (sha, body) in scripts {
                        db.add_script(sha, body);
                    }
                }
                Record::PubSub(registry) => {
                    if !saw_meta {
                        return Err(corrupt(offset, "pub/sub registry before meta"));
                    }
                    db.pubsub = registry;
                }
                Record::Notify(flags) => {
                    if !saw_meta {
                        return Err(corrupt(offset, "notification flags before meta"));
                    }
                    db.notify_flags = flags;
                }
                Record::Functions(libraries) => {
                    if !saw_meta {
                        return Err(corrupt(offset, "functions before meta"));
                    }
                    db.set_libraries(super::functions::Libraries::from_list(libraries));
                }
                Record::End => {
                    grant_new_commands(&mut db, known.as_deref());
                    for (d, entries) in entries.into_iter().enumerate() {
                        db.restore_keyspace(d, entries)
                            .map_err(|_| corrupt(offset, "a key repeated in a database"))?;
                    }
                    return Ok(db);
                }
            }
            offset += 4 + len;
        }
    }
}

/// Gives `+@all` users the commands this version has and the snapshot's
/// writer did not (`known`: its `KnownCommands`, None for a snapshot written
/// before that record, whose table lacked exactly
/// [`crate::acl::user::NAMES_ADDED_WITH_KNOWN_COMMANDS`]).
fn grant_new_commands(db: &mut Db, known: Option<&[String]>) {
    let known: std::collections::BTreeSet<&str> = match known {
        Some(names) => names.iter().map(String::as_str).collect(),
        None => crate::acl::user::all_names()
            .filter(|name| !crate::acl::user::NAMES_ADDED_WITH_KNOWN_COMMANDS.contains(name))
            .collect(),
    };
    std::sync::Arc::make_mut(&mut db.users).grant_new_commands(&known);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::AclOp;
    use crate::kv::{Command, Op};

    fn db_with_user() -> Db {
        let mut db = Db::new();
        db.apply(&Command {
            ts_ms: 1,
            op: Op::Set {
                key: "k".into(),
                value: "v".into(),
            },
        });
        let out = db.apply(&Command {
            ts_ms: 2,
            op: Op::Acl(AclOp::SetUser {
                name: "alice".into(),
                rules: vec!["on".into(), ">pw".into(), "~a*".into(), "+get".into()],
            }),
        });
        assert_eq!(out, crate::kv::Output::Ok);
        db
    }

    /// The users are part of the snapshot: restored identical, and the
    /// snapshot bytes differ when only a user differs.
    /// A client of node 2 subscribes to `name` (through the log, at `ts_ms`).
    fn subscribe(db: &mut Db, ts_ms: u64, kind: crate::kv::pubsub::Kind, name: &'static [u8]) {
        use crate::kv::pubsub::{PubSubOp, Subscriber};
        db.apply(&Command {
            ts_ms,
            op: Op::PubSub(PubSubOp::Subscribe {
                who: Subscriber {
                    node: 2,
                    incarnation: 9,
                    client: 4,
                },
                kind,
                names: vec![Bytes::from_static(name)],
            }),
        });
    }

    /// Subscriptions survive a snapshot (another node's subscribers must
    /// still be counted after an install), and change its bytes.
    #[test]
    fn pubsub_registry_round_trips_through_snapshots() {
        use crate::kv::pubsub::{Kind, PubSubOp};
        let mut db = Db::new();
        let empty = db.snapshot_bytes();
        subscribe(&mut db, 1, Kind::Pattern, b"n*");
        let bytes = db.snapshot_bytes();
        assert_ne!(bytes, empty);
        let mut restored = Db::restore(&bytes).unwrap();
        assert_eq!(restored, db);
        assert_eq!(restored.pubsub.numpat(), 1);
        let count = restored.apply(&Command {
            ts_ms: 2,
            op: Op::PubSub(PubSubOp::Publish {
                channel: Bytes::from_static(b"news"),
                message: Bytes::from_static(b"m"),
                shard: false,
            }),
        });
        assert_eq!(count, crate::kv::Output::Integer(1));
        assert_eq!(restored.len(), 0, "subscriptions are not keys");
    }

    #[test]
    fn users_round_trip_through_snapshots() {
        let db = db_with_user();
        let restored = Db::restore(&db.snapshot_bytes()).unwrap();
        assert_eq!(restored, db);
        assert!(restored.users().get(b"alice").unwrap().accepts(b"pw"));
        let mut other = db.clone();
        other.apply(&Command {
            ts_ms: 3,
            op: Op::Acl(AclOp::DelUser {
                names: vec!["alice".into()],
            }),
        });
        assert_ne!(other.snapshot_bytes(), db.snapshot_bytes());
    }

    /// A snapshot written before users existed (no `Users` record) restores
    /// with only the default user, its keys intact.
    #[test]
    fn snapshots_without_users_restore_with_the_default_user() {
        let db = db_with_user();
        let bytes = db.snapshot_bytes();
        // Meta is the first record, Users the second: cut the second out.
        let record_end =
            |at: usize| at + 4 + u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let meta_end = record_end(0);
        let users_end = record_end(meta_end);
        let mut old = bytes[..meta_end].to_vec();
        old.extend_from_slice(&bytes[users_end..]);
        let restored = Db::restore(&old).unwrap();
        assert!(restored.users().get(b"alice").is_none());
        assert!(restored.users().get(b"default").unwrap().nopass);
        assert_eq!(restored.dbs, db.dbs);
    }

    /// A `+@all` user restored from a snapshot written by a version with
    /// fewer commands may run the commands added since, as Redis's `+@all`
    /// covers later commands; a user built from `-@all` gets none of them,
    /// and a command the user was denied stays denied. Snapshots from before
    /// the `KnownCommands` record count as lacking exactly the names added
    /// with it.
    #[test]
    fn all_commands_users_get_the_commands_added_after_the_snapshot() {
        let mut db = db_with_user();
        for (name, rules) in [
            ("everything", &["on", "+@all", "-get"][..]),
            ("some", &["on", "-@all", "+set"][..]),
        ] {
            db.apply(&Command {
                ts_ms: 1,
                op: Op::Acl(AclOp::SetUser {
                    name: Bytes::from(name),
                    rules: rules.iter().map(|r| Bytes::from(*r)).collect(),
                }),
            });
        }
        let current = db.snapshot_bytes();
        // The users as an older table would have left them: without the
        // names added since.
        let added = crate::acl::user::NAMES_ADDED_WITH_KNOWN_COMMANDS;
        std::sync::Arc::make_mut(&mut db.users).forget_for_tests(added);
        let bytes = db.snapshot_bytes();
        let record_end =
            |at: usize| at + 4 + u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let users_end = record_end(record_end(0));
        let known_end = record_end(users_end);
        // Written by a version whose table lacked the added names.
        let mut older = bytes[..users_end].to_vec();
        let names: Vec<String> = crate::acl::user::all_names()
            .filter(|name| !added.contains(name))
            .map(str::to_string)
            .collect();
        push(&mut older, &Record::KnownCommands(names));
        older.extend_from_slice(&bytes[known_end..]);
        // Written before the record existed.
        let mut oldest = bytes[..users_end].to_vec();
        oldest.extend_from_slice(&bytes[known_end..]);
        for snapshot in [&older[..], &oldest[..]] {
            let restored = Db::restore(snapshot).unwrap();
            let users = restored.users();
            for name in added {
                assert!(users.get(b"everything").unwrap().may_run(name), "{name}");
                assert!(users.get(b"default").unwrap().may_run(name), "{name}");
                assert!(!users.get(b"some").unwrap().may_run(name), "{name}");
            }
            assert!(!users.get(b"everything").unwrap().may_run("get"));
            assert!(users.get(b"some").unwrap().may_run("set"));
        }
        // A snapshot that names every command restores the users it holds.
        let restored = Db::restore(&bytes).unwrap();
        assert!(!restored.users().get(b"default").unwrap().may_run("lolwut"));
        let restored = Db::restore(&current).unwrap();
        assert!(restored.users().get(b"default").unwrap().may_run("lolwut"));
    }

    /// A list survives a snapshot element for element, and the restored map
    /// accounts for the same memory even though its nodes are packed anew.
    #[test]
    fn lists_round_trip_through_snapshots_with_the_same_memory() {
        use crate::kv::list::List;
        use crate::kv::Value;
        let mut db = db_with_user();
        let mut list: List = (0..5000).map(|i| format!("element-{i}")).collect();
        list.remove(b"element-7", 0);
        list.trim(10, -10);
        list.push_front(&vec![7u8; 20_000]);
        db.put(0, b"l", Value::List(list), Some(1_000_000));
        db.put(2, b"small", Value::List(["a", "b"].iter().collect()), None);
        let restored = Db::restore(&db.snapshot_bytes()).unwrap();
        assert_eq!(restored, db);
        assert_eq!(restored.used_memory(), db.used_memory());
        assert_eq!(restored.snapshot_bytes(), db.snapshot_bytes());
    }

    /// Writing borrows ([`RecordOut`]) where reading owns ([`Record`]): the
    /// two must encode alike, or snapshots would not restore. A state with
    /// every kind of record is written, each record read back as `Record`
    /// and written again: the same bytes.
    #[test]
    fn borrowed_records_encode_as_the_owned_ones() {
        use crate::kv::pubsub::Kind;
        let mut db = db_with_user();
        let mut exec = |args: &[&str]| {
            db.apply(&Command {
                ts_ms: 3,
                op: Op::Exec {
                    db: 1,
                    args: args.iter().map(|a| Bytes::from(a.to_string())).collect(),
                },
            })
        };
        let code = "#!lua name=lib\nredis.register_function('f', function() return 1 end)";
        for args in [
            &["rpush", "l", "a", "b"][..],
            &["hset", "h", "f", "v"],
            &["zadd", "z", "1.5", "m"],
            &["eval", "return math.random(9)", "0"],
            &["function", "load", code],
            &["config", "set", "notify-keyspace-events", "KEA"],
        ] {
            let out = exec(args);
            assert!(
                !matches!(out, crate::kv::Output::Error(_)),
                "{args:?}: {out:?}"
            );
        }
        subscribe(&mut db, 4, Kind::Channel, b"c");
        let written = db.snapshot_bytes();
        let mut again = Vec::new();
        let mut kinds = std::collections::HashSet::new();
        let mut offset = 0;
        while offset < written.len() {
            let len = u32::from_le_bytes(written[offset..offset + 4].try_into().unwrap()) as usize;
            let record: Record =
                postcard::from_bytes(&written[offset + 4..offset + 4 + len]).unwrap();
            kinds.insert(std::mem::discriminant(&record));
            push(&mut again, &record);
            offset += 4 + len;
        }
        assert_eq!(
            kinds.len(),
            9,
            "every kind of record written today (not the V1 ones, only read)"
        );
        assert_eq!(&again[..], &written[..]);
    }

    /// A snapshot written before slots (2026-12-06: the meta with
    /// `next_seq`, each entry with its creation sequence, keys in key
    /// order) restores: the counters as written, the keys in key order,
    /// their values, deadlines and versions; the sequence numbers are
    /// dropped.
    #[test]
    fn a_snapshot_from_before_slots_restores() {
        let mut buf = Vec::new();
        push(
            &mut buf,
            &Record::MetaV1 {
                now_ms: 5_000,
                next_seq: 7,
                mod_counter: 41,
                tombstones: vec![(40, 0, Bytes::from("gone"))],
                tombstone_horizon: 3,
                stats: Stats::default(),
                config: KvConfig::default(),
            },
        );
        for (seq, key, expires) in [(5, "a", None), (2, "b", Some(9_000)), (6, "c", None)] {
            push(
                &mut buf,
                &Record::EntryV1 {
                    db: 0,
                    key: Bytes::from(key),
                    entry: EntryV1 {
                        value: super::super::Value::Str(Bytes::from(format!("v{key}")).into()),
                        expires_at_ms: expires,
                        version: 30 + seq,
                        seq,
                    },
                },
            );
        }
        push(&mut buf, &Record::End);
        let db = Db::restore(&buf).expect("a snapshot from before slots restores");
        assert_eq!(db.now_ms, 5_000);
        assert_eq!(db.mod_counter, 41);
        assert_eq!(db.tombstone_horizon, 3);
        assert_eq!(db.tombstones.len(), 1);
        let keys: Vec<&[u8]> = db.dbs[0].map.keys().map(|k| &k[..]).collect();
        assert_eq!(keys, [&b"a"[..], b"b", b"c"]);
        assert_eq!(db.get(b"b").map(|v| &v[..]), Some(&b"vb"[..]));
        let b = db.entry(0, b"b").expect("b");
        assert_eq!((b.expires_at_ms(), b.version), (Some(9_000), 32));
        assert_eq!(db.dbs[0].expiring.len(), 1);
        // Written again, it is today's format, and restores to the same.
        let again = Db::restore(&db.snapshot_bytes()).expect("rewritten");
        assert_eq!(again, db);
    }

    /// Users before Meta: refused, not half-applied.
    #[test]
    fn users_before_meta_is_corrupt() {
        let mut buf = Vec::new();
        push(&mut buf, &Record::Users(Users::default()));
        assert!(Db::restore(&buf).is_err());
    }

    /// A snapshot's copy gives up its share of the deadline index: while
    /// it is being written, the live map's TTL writes must not copy the
    /// whole index.
    #[test]
    fn a_snapshot_in_progress_shares_no_deadline_index() {
        let mut db = Db::new();
        for i in 0..100 {
            let key = format!("k{i}");
            db.apply(&Command::exec(1_000, 0, &["SET", &key, "v", "EX", "60"]));
        }
        let chunks = db.snapshot_chunks(64);
        assert!(!db.dbs[0].expiring.is_shared());
        db.apply(&Command::exec(2_000, 0, &["EXPIRE", "k1", "90"]));
        let restored = Db::restore(&chunks.flatten().collect::<Vec<u8>>()).expect("restores");
        assert_eq!(restored.dbs[0].expiring.len(), 100);
        let k1 = restored.entry(0, b"k1").and_then(Entry::expires_at_ms);
        assert_eq!(
            k1,
            Some(61_000),
            "the snapshot keeps the deadline it copied"
        );
    }
}
