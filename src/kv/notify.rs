//! Keyspace notifications (`notify-keyspace-events`), Redis 7.0's.
//!
//! The setting is replicated state: `CONFIG SET notify-keyspace-events` is a
//! log entry (the replicated half of CONFIG SET, `evict::config`), and the
//! flags are in snapshots (`Record::Notify`, written only when not empty).
//! Commands call [`Db::notify`] at apply, at the points and in the order
//! Redis calls `notifyKeyspaceEvent`; an event is published, like a
//! `PUBLISH`, to `__keyspace@<db>__:<key>` (message: the event name) and
//! `__keyevent@<db>__:<event>` (message: the key) through the replicated
//! subscription registry, which queues frames for this node's subscribers.
//!
//! Invariants:
//! - Events are a function of the entries applied: every node produces the
//!   same events in log order, and delivers those whose subscribers are its
//!   own. Publishing an event changes no replicated state (no counts, no
//!   clock): only the local outbox.
//! - With notifications off (the default) an event costs one test of the
//!   flags: the key and the event name are only read when a class is on.
//! - `keymiss` (`m`): a lookup Redis makes with `lookupKeyRead` records its
//!   miss ([`Db::note_read_miss`]) only while `m` is on, so with `m` off a
//!   read records and proposes nothing. Order: Redis's, lookup for lookup
//!   (`key_misses_match_redis_lookups` holds Redis 7.0.15's events for 241
//!   commands). SORT's pattern lookups follow its elements as Redis's
//!   `sortCommandGeneric` does: BY per element before sorting (none with a
//!   "don't sort" BY, `#`, or a pattern without `*`), GET per output element
//!   after sorting and LIMIT, in GET-clause order, none after a conversion
//!   error. Where Redis walks a set's or a sorted set's member dict, its
//!   order follows the process's random hash seed; dkv's is the set's own
//!   iteration order and the sorted set's rank order, the same on every node.
//! - The events difftest (`make events-difftest`, `KEAm` by default) compares
//!   every node's events with Redis's; those SORTs' `keymiss` events are
//!   compared as a multiset there (see README, keyspace notifications).

use std::cell::RefCell;

use bytes::{BufMut, Bytes, BytesMut};

use super::{Db, Entry};

/// `K`: `__keyspace@<db>__:<key>` messages.
pub const KEYSPACE: u32 = 1 << 0;
/// `E`: `__keyevent@<db>__:<event>` messages.
pub const KEYEVENT: u32 = 1 << 1;
/// `g`: generic commands (DEL, EXPIRE, RENAME ...).
pub const GENERIC: u32 = 1 << 2;
/// `$`: string commands.
pub const STRING: u32 = 1 << 3;
/// `l`: list commands.
pub const LIST: u32 = 1 << 4;
/// `s`: set commands.
pub const SET: u32 = 1 << 5;
/// `h`: hash commands.
pub const HASH: u32 = 1 << 6;
/// `z`: sorted-set commands.
pub const ZSET: u32 = 1 << 7;
/// `x`: a key expired.
pub const EXPIRED: u32 = 1 << 8;
/// `e`: a key was evicted.
pub const EVICTED: u32 = 1 << 9;
/// `t`: stream commands.
pub const STREAM: u32 = 1 << 10;
/// `m`: a read missed its key (not part of `A`; see [`take_misses`]).
pub const KEY_MISS: u32 = 1 << 11;
/// `d`: module key types (dkv has no modules: accepted, never emitted).
pub const MODULE: u32 = 1 << 13;
/// `n`: a key was created (not part of `A`).
pub const NEW: u32 = 1 << 14;
/// `A`: every class but `m` and `n`.
pub const ALL: u32 =
    GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// Redis's error text for a character that is no class.
pub const INVALID: &str = "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.";

/// Redis's `keyspaceEventsStringToFlags`: None for a character that names
/// no class.
pub fn parse_flags(classes: &[u8]) -> Option<u32> {
    classes.iter().try_fold(0, |flags, c| {
        let class = match c {
            b'A' => ALL,
            b'g' => GENERIC,
            b'$' => STRING,
            b'l' => LIST,
            b's' => SET,
            b'h' => HASH,
            b'z' => ZSET,
            b'x' => EXPIRED,
            b'e' => EVICTED,
            b'K' => KEYSPACE,
            b'E' => KEYEVENT,
            b't' => STREAM,
            b'm' => KEY_MISS,
            b'd' => MODULE,
            b'n' => NEW,
            _ => return None,
        };
        Some(flags | class)
    })
}

/// Redis's `keyspaceEventsFlagsToString` (what CONFIG GET shows).
pub fn flags_text(flags: u32) -> String {
    let mut text = String::new();
    if flags & ALL == ALL {
        text.push('A');
    } else {
        for (class, c) in [
            (GENERIC, 'g'),
            (STRING, '$'),
            (LIST, 'l'),
            (SET, 's'),
            (HASH, 'h'),
            (ZSET, 'z'),
            (EXPIRED, 'x'),
            (EVICTED, 'e'),
            (STREAM, 't'),
            (MODULE, 'd'),
            (NEW, 'n'),
        ] {
            if flags & class != 0 {
                text.push(c);
            }
        }
    }
    for (class, c) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (KEY_MISS, 'm')] {
        if flags & class != 0 {
            text.push(c);
        }
    }
    text
}

thread_local! {
    /// Keys that reads on this thread missed while `m` was on, not yet sent
    /// (see [`take_misses`]).
    static MISSED: RefCell<Vec<(u8, Bytes)>> = const { RefCell::new(Vec::new()) };
}

/// Notes that a read missed `key` in database `db` ([`Db::lookup_read`],
/// only while `m` is on; Redis's `lookupKey` sends `keymiss` there).
pub(crate) fn record_miss(db: usize, key: &[u8]) {
    let db = u8::try_from(db).unwrap_or(u8::MAX);
    let _ = MISSED.try_with(|m| m.borrow_mut().push((db, Bytes::copy_from_slice(key))));
}

/// The misses recorded on this thread since the last call, in order.
///
/// A read runs on one thread from start to end (under the map's lock), so
/// what it recorded is its own: a read served off the log takes its misses
/// after it ran and proposes them as one [`PubSubOp::KeyMiss`] entry, whose
/// apply sends the `keymiss` events on every node, ordered with all other
/// events. A write's lookups (SUNIONSTORE's sources, a script's reads) are
/// sent by apply itself, before the entry's next event, as in Redis.
///
/// [`PubSubOp::KeyMiss`]: super::pubsub::PubSubOp::KeyMiss
pub fn take_misses() -> Vec<(u8, Bytes)> {
    MISSED
        .try_with(|m| std::mem::take(&mut *m.borrow_mut()))
        .unwrap_or_default()
}

fn channel(prefix: &[u8], db: usize, suffix: &[u8]) -> Bytes {
    let db = db.to_string();
    let mut chan = BytesMut::with_capacity(prefix.len() + db.len() + 3 + suffix.len());
    chan.put_slice(prefix);
    chan.put_slice(db.as_bytes());
    chan.put_slice(b"__:");
    chan.put_slice(suffix);
    chan.freeze()
}

impl Db {
    /// The `notify-keyspace-events` flags.
    pub fn notify_flags(&self) -> u32 {
        self.notify_flags
    }

    /// Redis's `notifyKeyspaceEvent`: publishes `event` of `class` on `key`
    /// in database `db` if the class is on (see the module docs).
    #[inline]
    pub(crate) fn notify(&mut self, class: u32, event: &'static str, db: usize, key: &[u8]) {
        if self.notify_flags & class != 0 {
            self.publish_event(event, db, key);
        }
    }

    /// The work of [`Db::notify`] once the class is on: out of line, so
    /// the hot path with notifications off is one test.
    #[cold]
    #[inline(never)]
    fn publish_event(&mut self, event: &'static str, db: usize, key: &[u8]) {
        // The entry's lookups that missed came before this event.
        self.publish_misses();
        self.send_event(event, db, key);
    }

    /// Sends the `keymiss` events of the lookups this thread recorded
    /// during the entry being applied (see [`take_misses`]).
    pub(crate) fn publish_misses(&mut self) {
        for (db, key) in take_misses() {
            self.send_event("keymiss", usize::from(db), &key);
        }
    }

    fn send_event(&mut self, event: &'static str, db: usize, key: &[u8]) {
        let flags = self.notify_flags;
        let event = Bytes::from_static(event.as_bytes());
        if flags & KEYSPACE != 0 {
            let chan = channel(b"__keyspace@", db, key);
            self.pubsub.publish_event(&chan, &event);
        }
        if flags & KEYEVENT != 0 {
            let chan = channel(b"__keyevent@", db, &event);
            self.pubsub
                .publish_event(&chan, &Bytes::copy_from_slice(key));
        }
    }

    /// Records a miss of a lookup Redis makes with `lookupKeyRead` (so
    /// sends `keymiss` at), only while `m` is on: the read lookups' own
    /// ([`Db::lookup_read`]) and those inside writes (GETDEL, COPY's source,
    /// SORT's key, GEORADIUS's, XACK's ...), which use the write lookups to
    /// delete an expired key as Redis's master does; a write's misses are
    /// sent at its apply (see [`take_misses`]).
    #[inline]
    pub(crate) fn note_read_miss(&self, db: usize, key: &[u8]) {
        if self.notify_flags & KEY_MISS != 0 {
            record_miss(db, key);
        }
    }

    /// [`Db::lookup_write`] for a write's lookup Redis makes with
    /// `lookupKeyRead`: a miss sends `keymiss` ([`Db::note_read_miss`]).
    pub(crate) fn lookup_write_as_read(&mut self, db: usize, key: &[u8]) -> Option<&Entry> {
        if !self.exists_for_write(db, key) {
            self.note_read_miss(db, key);
            return None;
        }
        self.dbs[db].map.get(key)
    }

    /// The `del` event Redis sends after a command emptied `key` (which
    /// removed it): sent if `key` is gone.
    pub(crate) fn notify_if_deleted(&mut self, db: usize, key: &[u8]) {
        if self.notify_flags & GENERIC != 0 && !self.dbs[db].map.contains_key(key) {
            self.notify(GENERIC, "del", db, key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::pubsub::{Frame, Kind, PubSubOp, Subscriber};
    use crate::kv::{Command, Op, Output};

    const ME: Subscriber = Subscriber {
        node: 1,
        incarnation: 1,
        client: 9,
    };

    fn run(db: &mut Db, ts_ms: u64, op: Op) -> Output {
        db.apply(&Command { ts_ms, op })
    }

    fn exec(db: &mut Db, index: u8, line: &str) -> Output {
        let args = line
            .split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect();
        run(db, 1_000, Op::Exec { db: index, args })
    }

    /// A map with `flags` set through the log and a local subscriber to
    /// every keyspace channel.
    fn subscribed(flags: &str) -> Db {
        let mut db = Db::new();
        db.pubsub.set_local(ME.node, ME.incarnation);
        let out = exec(
            &mut db,
            0,
            &format!("config set notify-keyspace-events {flags}"),
        );
        assert_eq!(out, Output::Ok);
        run(
            &mut db,
            1_000,
            Op::PubSub(PubSubOp::Subscribe {
                who: ME,
                kind: Kind::Pattern,
                names: vec![Bytes::from_static(b"__key*__:*")],
            }),
        );
        db.pubsub.take_frames();
        db
    }

    /// The events delivered since the last call, as `channel message`.
    fn events(db: &mut Db) -> Vec<String> {
        db.pubsub
            .take_frames()
            .into_iter()
            .filter_map(|(_, frame)| match frame {
                Frame::PMessage {
                    channel, message, ..
                } => Some(format!(
                    "{} {}",
                    String::from_utf8_lossy(&channel),
                    String::from_utf8_lossy(&message)
                )),
                _ => None,
            })
            .collect()
    }

    /// Redis 7.0.15 with `notify-keyspace-events KEA`, a `__keyevent@*__:*`
    /// subscriber and these commands sent one by one: exactly these events.
    #[test]
    fn commands_emit_redis_events_in_redis_order() {
        let mut db = subscribed("KEA");
        let commands = [
            "set k v ex 100",
            "setnx k v",
            "rpush l a b",
            "lmove l l2 left right",
            "lmove l l2 left left",
            "hset h f v",
            "hdel h f",
            "sadd s a",
            "smove s s2 a",
            "zadd z 1 a",
            "zincrby z 1 a",
            "zadd z 2 b",
            "zpopmin z 5",
            "geoadd gz 1 2 a",
            "geosearchstore gd gz fromlonlat 1 2 byradius 1 km",
            "georadius gz 1 2 1 km store gd2",
            "geosearchstore gd nokey fromlonlat 1 2 byradius 1 km",
            "rename k k2",
            "copy k2 k3",
            "move k3 1",
            "incr n",
            "incrbyfloat n 1.5",
            "append n x",
            "setrange n 0 y",
            "getex k2 persist",
            "getdel k2",
            "sadd s3 a b",
            "sinterstore d s3 s3",
            "sinterstore d nokey",
            "rpush sl 3 1",
            "sort sl store so",
            "ltrim so 5 6",
            "set e 1",
            "expire e 0",
        ];
        let mut keyevents = Vec::new();
        for line in commands {
            exec(&mut db, 0, line);
            let all = events(&mut db);
            // Each event goes to the keyspace channel, then the keyevent one.
            for pair in all.chunks(2) {
                let (space, event) = (&pair[0], &pair[1]);
                let (channel, key) = event.split_once(' ').unwrap();
                let (prefix, name) = channel.split_once("__:").unwrap();
                let index = prefix.trim_start_matches("__keyevent@");
                assert_eq!(
                    *space,
                    format!("__keyspace@{index}__:{key} {name}"),
                    "{line}"
                );
                keyevents.push(event.clone());
            }
        }
        let expected = [
            "0 set k",
            "0 expire k",
            "0 rpush l",
            "0 rpush l2",
            "0 lpop l",
            "0 lpush l2",
            "0 lpop l",
            "0 del l",
            "0 hset h",
            "0 hdel h",
            "0 del h",
            "0 sadd s",
            "0 srem s",
            "0 del s",
            "0 sadd s2",
            "0 zadd z",
            "0 zincr z",
            "0 zadd z",
            "0 zpopmin z",
            "0 del z",
            "0 zadd gz",
            "0 geosearchstore gd",
            "0 georadiusstore gd2",
            "0 del gd",
            "0 rename_from k",
            "0 rename_to k2",
            "0 copy_to k3",
            "0 move_from k3",
            "1 move_to k3",
            "0 incrby n",
            "0 incrbyfloat n",
            "0 append n",
            "0 setrange n",
            "0 persist k2",
            "0 del k2",
            "0 sadd s3",
            "0 sinterstore d",
            "0 del d",
            "0 rpush sl",
            "0 sortstore so",
            "0 ltrim so",
            "0 del so",
            "0 set e",
            "0 del e",
        ]
        .map(|e| {
            let (db, rest) = e.split_once(' ').unwrap();
            let (event, key) = rest.split_once(' ').unwrap();
            format!("__keyevent@{db}__:{event} {key}")
        });
        assert_eq!(keyevents, expected);
    }

    /// Redis 7.0.15 with `En`: a created key is `new`, whatever created it
    /// (RENAME and MOVE create their destination; SET over a key does not).
    #[test]
    fn created_keys_emit_new() {
        let mut db = subscribed("En");
        for line in [
            "set a 1",
            "set a 2",
            "rpush l x",
            "set b 1",
            "rename a b",
            "copy b c",
            "lmove l l2 left left",
            "zadd z xx 1 m",
            "hincrby h f 1",
            "incr n",
            "sadd s a",
            "sinterstore d s",
        ] {
            exec(&mut db, 0, line);
        }
        exec(&mut db, 0, "move d 1");
        let expected: Vec<String> = [
            "0 a", "0 l", "0 b", "0 b", "0 c", "0 l2", "0 h", "0 n", "0 s", "0 d", "1 d",
        ]
        .iter()
        .map(|e| {
            let (db, key) = e.split_once(' ').unwrap();
            format!("__keyevent@{db}__:new {key}")
        })
        .collect();
        assert_eq!(events(&mut db), expected);
    }

    #[test]
    fn only_the_configured_classes_and_channels_are_published() {
        let mut db = subscribed("K$");
        exec(&mut db, 0, "set k v");
        exec(&mut db, 0, "del k");
        exec(&mut db, 0, "rpush l a");
        assert_eq!(events(&mut db), vec!["__keyspace@0__:k set".to_string()]);
        exec(&mut db, 0, "config set notify-keyspace-events ");
        exec(&mut db, 0, "set k v");
        assert!(events(&mut db).is_empty());
        assert_eq!(db.notify_flags(), 0);
    }

    /// `m`: a write's lookups that miss send `keymiss` at apply, before the
    /// write's own events (Redis 7.0.15, `notify-keyspace-events Egm`:
    /// `sinterstore d nokey` sends `keymiss nokey`, then `del d`); a read
    /// records its misses for its node to propose as a `KeyMiss` entry,
    /// whose apply sends them; with `m` off nothing is recorded or sent.
    #[test]
    fn key_misses_are_sent_at_apply_in_lookup_order() {
        let mut db = subscribed("Egm");
        exec(&mut db, 0, "sadd d x");
        exec(&mut db, 0, "sinterstore d nokey");
        assert_eq!(
            events(&mut db),
            ["__keyevent@0__:keymiss nokey", "__keyevent@0__:del d"]
        );
        take_misses();
        let get = |k: &str| {
            vec![
                Bytes::from_static(b"get"),
                Bytes::copy_from_slice(k.as_bytes()),
            ]
        };
        db.query(1, &get("gone"), 1_000, 1);
        db.query(1, &get("gone"), 1_000, 1);
        let misses = take_misses();
        assert_eq!(misses, vec![(1, Bytes::from_static(b"gone")); 2]);
        assert!(events(&mut db).is_empty(), "a read sends nothing itself");
        let entry = Op::PubSub(PubSubOp::KeyMiss { misses });
        run(&mut db, 1_000, entry.clone());
        assert_eq!(events(&mut db), ["__keyevent@1__:keymiss gone"; 2]);
        exec(&mut db, 0, "config set notify-keyspace-events Eg");
        db.query(1, &get("gone"), 1_000, 1);
        assert!(take_misses().is_empty());
        run(&mut db, 1_000, entry);
        exec(&mut db, 0, "sinterstore d nokey");
        assert!(events(&mut db).is_empty());
    }

    /// Runs `line` (`setup ;; ... ;; command`, each a command of words) on
    /// `db` as dkv's server would: writes through the log, the last command,
    /// if a read, on the map with its misses proposed as a `KeyMiss` entry.
    fn run_as_server(db: &mut Db, line: &str) {
        let mut commands: Vec<Vec<Bytes>> = line
            .split(" ;; ")
            .map(|c| {
                c.split(' ')
                    .map(|a| Bytes::copy_from_slice(a.as_bytes()))
                    .collect()
            })
            .collect();
        let last = commands.pop().unwrap();
        for args in commands {
            run(db, 1_000, Op::Exec { db: 0, args });
        }
        let is_read = crate::cmd::lookup(&last[0])
            .is_some_and(|(_, spec)| matches!(spec.kind, crate::cmd::Kind::Read { .. }));
        if is_read {
            take_misses();
            db.query(0, &last, 1_000, 1);
            let misses = take_misses();
            if !misses.is_empty() {
                run(db, 1_000, Op::PubSub(PubSubOp::KeyMiss { misses }));
            }
        } else {
            run(db, 1_000, Op::Exec { db: 0, args: last });
        }
    }

    /// Every lookup Redis 7.0 sends `keymiss` at: Redis 7.0.15 with
    /// `notify-keyspace-events Em`, a `__keyevent@*__:*` subscriber, and
    /// each line run on an empty database (`;;` separates its commands):
    /// the keys of these `keymiss` events, in this order (Redis's
    /// `lookupKeyRead*` without `LOOKUP_NONOTIFY`; writes' own lookups send
    /// none).
    #[test]
    fn key_misses_match_redis_lookups() {
        let cases: &[(&str, &[&str])] = &[
            ("sort nokey", &["nokey"]),
            ("sort nokey store d", &["nokey"]),
            ("sort_ro nokey", &["nokey"]),
            ("rpush sl 1 2 ;; sort sl by w_*", &["w_1", "w_2"]),
            (
                "rpush sl 1 2 ;; sort sl by w_* get h_*->f get #",
                &["w_1", "w_2", "h_1", "h_2"],
            ),
            ("rpush sl 1 2 ;; sort sl get o_* store d2", &["o_1", "o_2"]),
            ("rpush sl 1 2 ;; sort_ro sl by w_*", &["w_1", "w_2"]),
            // SORT: BY lookups per element in input order before sorting,
            // GET lookups per output element after sorting and LIMIT, in
            // GET-clause order; none for `#`, a pattern without `*`, a
            // "don't sort" BY, or after a conversion error.
            (
                "rpush sl 1 3 2 ;; sort sl by w_* desc get o_*",
                &["w_1", "w_3", "w_2", "o_3", "o_2", "o_1"],
            ),
            (
                "zadd z 1 a 2 b 3 c ;; sort z by nosort desc limit 1 2 get o_*",
                &["o_b", "o_a"],
            ),
            (
                "zadd z 1 a 2 b 3 c ;; sort z by nosort limit 1 5 get o_* get #",
                &["o_b", "o_c"],
            ),
            ("rpush sl 1 2 ;; sort sl by h_*->f", &["h_1", "h_2"]),
            ("rpush sl 1 2 ;; sort sl by # get # get nokey", &[]),
            (
                "rpush sl 1 2 ;; sort sl by w_* limit 5 1 get o_*",
                &["w_1", "w_2"],
            ),
            ("rpush sl 1 x ;; sort sl get o_*", &[]),
            (
                "rpush sl 1 x ;; sort sl by w_* get o_*",
                &["w_1", "w_x", "o_1", "o_x"],
            ),
            (
                "rpush sl 3 1 2 ;; sort sl by w_* limit 0 1 get o_*",
                &["w_3", "w_1", "w_2", "o_1"],
            ),
            (
                "sadd si 3 1 2 ;; sort si by w_* get o_*",
                &["w_1", "w_2", "w_3", "o_1", "o_2", "o_3"],
            ),
            (
                "sadd ss b a ;; sort ss by nosort get o_* store d",
                &["o_a", "o_b"],
            ),
            (
                "rpush sl 1 2 ;; sort sl by w_*-> get o_*->",
                &["w_1->", "w_2->", "o_1->", "o_2->"],
            ),
            (
                "rpush sl b a c ;; sort sl by nosort by w_* desc get o_*",
                &["o_c", "o_a", "o_b"],
            ),
            (
                "rpush sl 2 1 ;; sort_ro sl desc limit 0 1 get o_* get p_*",
                &["o_2", "p_2"],
            ),
            (
                "rpush sl b a ;; sort sl alpha get o_* get p_*->f",
                &["o_a", "p_a", "o_b", "p_b"],
            ),
            (
                "rpush sl b a ;; set w_b 1 ;; sort sl by w_* alpha get o_*",
                &["w_a", "o_a", "o_b"],
            ),
            (
                "rpush sl b a ;; sort sl by w_* limit 0 0 get o_*",
                &["w_b", "w_a"],
            ),
            (
                "rpush sl a b ;; set w_a 2 ;; set w_b 1 ;; sort sl by w_* get o_* get w_*",
                &["o_b", "o_a"],
            ),
            ("bitop and d n1 n2", &["n1", "n2"]),
            ("bitfield nokey get u8 0", &["nokey"]),
            ("bitfield nokey incrby u8 0 1", &[]),
            ("bitfield_ro nokey get u8 0", &["nokey"]),
            ("bitcount nokey", &["nokey"]),
            ("bitpos nokey 1", &["nokey"]),
            ("getbit nokey 1", &["nokey"]),
            ("pfcount nokey", &["nokey"]),
            ("pfcount nokey nokey2", &["nokey", "nokey2"]),
            ("pfmerge d n1 n2", &["d", "n1", "n2"]),
            ("pfadd nokey", &[]),
            ("getex nokey", &["nokey"]),
            ("getdel nokey", &["nokey"]),
            ("mget a b", &["a", "b"]),
            ("lcs a b", &["a", "b"]),
            ("strlen nokey", &["nokey"]),
            ("getrange nokey 0 1", &["nokey"]),
            ("copy nokey d", &["nokey"]),
            ("dump nokey", &["nokey"]),
            ("touch a b", &["a", "b"]),
            ("exists a b", &["a", "b"]),
            ("ttl a", &["a"]),
            ("pttl a", &["a"]),
            ("expiretime a", &["a"]),
            ("type a", &["a"]),
            ("object encoding a", &[]),
            ("randomkey", &[]),
            ("geosearch nokey fromlonlat 1 2 byradius 1 km", &["nokey"]),
            (
                "geosearchstore d nokey fromlonlat 1 2 byradius 1 km",
                &["nokey"],
            ),
            ("georadius nokey 1 2 1 km", &["nokey"]),
            ("georadius nokey 1 2 1 km store d", &["nokey"]),
            ("georadiusbymember nokey m 1 km", &["nokey"]),
            ("geopos nokey m", &["nokey"]),
            ("geodist nokey a b", &["nokey"]),
            ("geohash nokey a", &["nokey"]),
            ("zunionstore d 2 n1 n2", &["n1", "n2"]),
            ("zinterstore d 2 n1 n2", &["n1", "n2"]),
            ("zdiffstore d 2 n1 n2", &["n1", "n2"]),
            ("zunion 2 n1 n2", &["n1", "n2"]),
            ("zinter 2 n1 n2", &["n1", "n2"]),
            ("zintercard 2 n1 n2", &["n1", "n2"]),
            ("zdiff 2 n1 n2", &["n1", "n2"]),
            ("zrangestore d nokey 0 -1", &["nokey"]),
            ("zrange nokey 0 -1", &["nokey"]),
            ("zrangebyscore nokey 0 1", &["nokey"]),
            ("zrevrangebylex nokey + -", &["nokey"]),
            ("zcard nokey", &["nokey"]),
            ("zscore nokey m", &["nokey"]),
            ("zmscore nokey m", &["nokey"]),
            ("zrank nokey m", &["nokey"]),
            ("zcount nokey 0 1", &["nokey"]),
            ("zlexcount nokey - +", &["nokey"]),
            ("zrandmember nokey", &["nokey"]),
            ("zscan nokey 0", &["nokey"]),
            ("zpopmin nokey", &[]),
            ("zmpop 1 nokey min", &[]),
            ("sinter n1 n2", &["n1", "n2"]),
            ("sinterstore d n1 n2", &["n1", "n2"]),
            ("sunionstore d n1 n2", &["n1", "n2"]),
            ("sdiffstore d n1 n2", &["n1", "n2"]),
            ("sintercard 2 n1 n2", &["n1", "n2"]),
            ("smismember nokey a", &["nokey"]),
            ("sismember nokey a", &["nokey"]),
            ("smembers nokey", &["nokey"]),
            ("srandmember nokey", &["nokey"]),
            ("sscan nokey 0", &["nokey"]),
            ("smove nokey d a", &[]),
            ("spop nokey", &[]),
            ("llen nokey", &["nokey"]),
            ("lindex nokey 0", &["nokey"]),
            ("lrange nokey 0 1", &["nokey"]),
            ("lpos nokey a", &["nokey"]),
            ("lmove nokey d left left", &[]),
            ("rpoplpush nokey d", &[]),
            ("lmpop 1 nokey left", &[]),
            ("hget nokey f", &["nokey"]),
            ("hmget nokey f", &["nokey"]),
            ("hgetall nokey", &["nokey"]),
            ("hstrlen nokey f", &["nokey"]),
            ("hrandfield nokey", &["nokey"]),
            ("hexists nokey f", &["nokey"]),
            ("hlen nokey", &["nokey"]),
            ("hkeys nokey", &["nokey"]),
            ("hscan nokey 0", &["nokey"]),
            ("xread streams n1 n2 0 0", &["n1", "n2", "n1", "n2"]),
            ("xread streams n1 n2 $ $", &["n1", "n2", "n1", "n2"]),
            ("xread streams n1 n2 0 bad", &["n1", "n2"]),
            ("xrange nokey - +", &["nokey"]),
            ("xrevrange nokey + -", &["nokey"]),
            ("xlen nokey", &["nokey"]),
            ("xinfo stream nokey", &["nokey"]),
            ("xinfo groups nokey", &["nokey"]),
            ("xinfo consumers nokey g", &["nokey"]),
            ("xpending nokey g", &["nokey"]),
            ("xreadgroup group g c streams nokey >", &["nokey"]),
            ("xautoclaim nokey g c 0 0", &["nokey"]),
            ("xclaim nokey g c 0 0-1", &["nokey"]),
            ("xack nokey g 0-1", &["nokey"]),
            ("xtrim nokey maxlen 0", &[]),
            ("xsetid nokey 0-1", &[]),
            ("xgroup create nokey g $", &[]),
            ("get nokey", &["nokey"]),
            ("append nokey x", &[]),
            ("incr nokey2", &[]),
            ("set nokey2 v get", &["nokey2"]),
            ("del nokey2", &[]),
            ("eval return(redis.call('get','zz')) 0", &["zz"]),
            ("set nokey x ;; bitop and d nokey n2", &["n2"]),
            ("sadd s a ;; sinterstore d s n1 n2", &["n1", "n2"]),
            ("zadd z 1 a ;; zunionstore d 2 z n1", &["n1"]),
            (
                "xadd s1 1-1 a b ;; xread count 1 streams s1 n1 0 0",
                &["n1", "n1"],
            ),
            ("getset nokey v", &["nokey"]),
            ("set nokey v xx get", &["nokey"]),
            ("set nokey v nx get", &["nokey"]),
            ("set s x ;; zunionstore d 2 n1 s", &["n1"]),
            ("set s x ;; zinter 2 n1 s n2", &["n1"]),
            ("set s x ;; sinter n1 s n2", &["n1"]),
            ("set s x ;; sunionstore d n1 s n2", &["n1"]),
            ("zadd z 1 a ;; zinter 2 z n1", &["n1"]),
            ("zadd z 1 a ;; zinterstore d 2 n1 z weights 1", &["n1"]),
            ("zadd z 1 a ;; zunionstore d 2 n1 z weights 1 x", &["n1"]),
            ("zunionstore d 0 n1", &[]),
            ("zunionstore d 3 n1 n2", &[]),
            ("zunion 2 n1 n2 withscores", &["n1", "n2"]),
            ("georadius_ro nokey 1 2 1 km", &["nokey"]),
            ("georadiusbymember_ro nokey m 1 km", &["nokey"]),
            ("geosearch nokey frommember m byradius 1 km", &["nokey"]),
            (
                "geoadd g 1 2 a ;; geosearchstore d g frommember zz byradius 1 km",
                &[],
            ),
            ("geoadd g 1 2 a ;; georadius g 1 2 1 km store d", &[]),
            (
                "geosearchstore d nokey fromlonlat 1 2 byradius 1 km storedist",
                &["nokey"],
            ),
            ("sunion n1 n2", &["n1", "n2"]),
            ("sdiff n1 n2", &["n1", "n2"]),
            ("sdiffstore d n1 n2", &["n1", "n2"]),
            ("sintercard 2 n1 n2 limit 1", &["n1", "n2"]),
            ("zrangestore d nokey 0 -1 byscore", &["nokey"]),
            ("xinfo stream nokey full", &["nokey"]),
            ("xgroup setid nokey g 0", &[]),
            ("xgroup createconsumer nokey g c", &[]),
            ("xgroup destroy nokey g", &[]),
            ("xgroup delconsumer nokey g c", &[]),
            (
                "xadd s1 1-1 a b ;; xgroup create s1 g 0 ;; xreadgroup group g c streams s1 n1 > >",
                &["n1"],
            ),
            (
                "xadd s1 1-1 a b ;; xgroup create s1 g 0 ;; xreadgroup group g c streams n1 s1 > >",
                &["n1"],
            ),
            (
                "xadd s1 1-1 a b ;; xgroup create s1 g 0 ;; xreadgroup group g c streams s1 n1 0 0",
                &["n1"],
            ),
            ("xreadgroup group g c streams nokey 0", &["nokey"]),
            ("xpending nokey g - + 10", &["nokey"]),
            ("xclaim nokey g c 0 0-1 justid", &["nokey"]),
            ("xautoclaim nokey g c 0 0 justid", &["nokey"]),
            ("xdel nokey 1-1", &[]),
            ("hincrby nokey f 1", &[]),
            ("lrange nokey 0 1", &["nokey"]),
            ("zrevrank nokey a", &["nokey"]),
            ("substr nokey 0 1", &["nokey"]),
            ("sort nokey by w_* store d", &["nokey"]),
            (
                "rpush sl 1 2 ;; sort sl by w_* get # store d",
                &["w_1", "w_2"],
            ),
            ("rpush sl 1 2 ;; sort sl by nosort get o_*", &["o_1", "o_2"]),
            ("rpush sl 3 1 ;; sort sl limit 0 1 get o_*", &["o_1"]),
            ("set sl x ;; sort sl", &[]),
            ("copy nokey d db 1", &["nokey"]),
            ("set a 1 ;; copy a a", &[]),
            ("copy nokey nokey", &[]),
            ("getex nokey px 100", &["nokey"]),
            ("getex nokey bad", &[]),
            ("renamenx nokey b", &[]),
            ("lcs a b len", &["a", "b"]),
            ("bitop not d n1", &["n1"]),
            ("pfcount n1 n1", &["n1", "n1"]),
            ("pfmerge d", &["d"]),
            ("bitfield nokey get u8 0 incrby u8 0 1", &[]),
            ("bitfield nokey get u8 0 set u8 0 1", &[]),
            ("dump nokey", &["nokey"]),
            ("restore nokey 0 x", &[]),
            ("lmpop 2 n1 n2 left", &[]),
            ("zmpop 2 n1 n2 min", &[]),
            ("sinterstore d n1", &["n1"]),
            ("smismember nokey a b", &["nokey"]),
            ("hmget nokey a b", &["nokey"]),
            ("xreadgroup group g c streams st0 $", &["st0"]),
            ("xreadgroup group g c streams st0 0", &["st0"]),
            ("xreadgroup group g c count 1 noack streams st0 >", &["st0"]),
            ("xread streams st0 st0 0 0", &["st0", "st0", "st0", "st0"]),
            ("xread count 0 streams st0 $", &["st0", "st0"]),
            ("xread count 2 streams st0 1-1", &["st0", "st0"]),
            (
                "xadd st0 1-1 a b ;; xread streams st0 st1 $ 0",
                &["st1", "st1"],
            ),
            (
                "xadd st0 1-1 a b ;; xread streams st1 st0 0 $",
                &["st1", "st1"],
            ),
            (
                "xadd st0 1-1 a b ;; xgroup create st0 g 0 ;; xreadgroup group g c streams st0 $",
                &[],
            ),
            (
                "xadd st0 1-1 a b ;; xgroup create st0 g 0 ;; xreadgroup group g c streams st0 bad",
                &[],
            ),
            ("xpending st0 g idle 0 - + 10", &["st0"]),
            ("xpending st0 g - + 10 c", &["st0"]),
            ("xack st0 g 1-1 2-2", &["st0"]),
            ("xclaim st0 g c 0 1-1 force", &["st0"]),
            ("xautoclaim st0 g c 0 0 count 1", &["st0"]),
            ("xgroup create st0 g $ mkstream", &[]),
            ("xinfo consumers st0 g", &["st0"]),
            ("xsetid st0 5-5", &[]),
            ("xtrim st0 minid 0", &[]),
            ("xdel st0 1-1", &[]),
            ("xlen st0", &["st0"]),
            ("xautoclaim st0 g0 c0 86400000 - COUNT 3", &["st0"]),
            ("xautoclaim st0 g0 c0 86400000 0 COUNT 0", &["st0"]),
            ("xautoclaim st0 g0 c0 x 0", &["st0"]),
            ("xautoclaim st0 g0 c0 0 bad", &["st0"]),
            ("xautoclaim st0 g0 c0 0 0 count 1 justid extra", &["st0"]),
            ("xclaim st0 g0 c0 x 1-1", &["st0"]),
            ("xclaim st0 g0 c0 0 bad", &["st0"]),
            ("xclaim st0 g0 c0 0 1-1 idle x", &["st0"]),
            ("xclaim st0 g0 c0 0 1-1 bogus", &["st0"]),
            ("xack st0 g0 bad", &["st0"]),
            ("xpending st0 g0 bad", &[]),
            ("xpending st0 g0 - + x", &[]),
            ("xpending st0 g0 idle x - + 1", &[]),
            ("xreadgroup group g c streams st0 bad", &["st0"]),
            ("xread streams st0 bad", &["st0"]),
            ("xread count x streams st0 0", &[]),
            ("xinfo stream st0 full count x", &["st0"]),
            ("xrange st0 bad +", &[]),
            ("xlen st0 extra", &[]),
            ("set st0 x ;; xautoclaim st0 g0 c0 0 0 count 0", &[]),
            ("xautoclaim st0 g0 c0 0 0 count 0", &["st0"]),
        ];
        let mut failures = Vec::new();
        for &(line, expected) in cases {
            let mut db = subscribed("Em");
            run_as_server(&mut db, line);
            let got: Vec<String> = events(&mut db)
                .into_iter()
                .filter_map(|e| e.strip_prefix("__keyevent@0__:keymiss ").map(String::from))
                .collect();
            if got != expected {
                failures.push(format!("{line}: Redis {expected:?}, dkv {got:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// Redis 7.0.15's XAUTOCLAIM: the key's lookup, then its arguments,
    /// then WRONGTYPE (so a refused XAUTOCLAIM of a missing key, parsed at
    /// apply, still sends `keymiss`).
    #[test]
    fn xautoclaim_refuses_in_redis_order() {
        let mut db = subscribed("Em");
        exec(&mut db, 0, "set st0 x");
        assert_eq!(
            exec(&mut db, 0, "xautoclaim st0 g0 c0 0 0 count 0"),
            Output::err("ERR COUNT must be > 0")
        );
        assert_eq!(
            exec(&mut db, 0, "xautoclaim st0 g0 c0 0 0"),
            Output::err(crate::kv::errors::WRONGTYPE)
        );
    }

    /// Expirations and evictions are entries the leader proposes; every
    /// replica applying them publishes `expired` / `evicted`, and a write
    /// that finds a key expired publishes `expired` before its own event.
    #[test]
    fn expirations_and_evictions_are_published() {
        let mut db = subscribed("Exe$");
        exec(&mut db, 0, "set a 1 px 10");
        exec(&mut db, 0, "set b 1 px 10");
        exec(&mut db, 0, "set c 1");
        events(&mut db);
        let expire = Op::Expire {
            keys: vec![(0, Bytes::from_static(b"a"))],
        };
        assert_eq!(run(&mut db, 5_000, expire), Output::Integer(1));
        assert_eq!(events(&mut db), vec!["__keyevent@0__:expired a"]);
        exec(&mut db, 0, "set b 2");
        assert_eq!(
            events(&mut db),
            vec!["__keyevent@0__:expired b", "__keyevent@0__:set b"]
        );
        let evict = Op::Evict {
            keys: vec![(0, Bytes::from_static(b"c"))],
        };
        assert_eq!(run(&mut db, 5_000, evict), Output::Integer(1));
        assert_eq!(events(&mut db), vec!["__keyevent@0__:evicted c"]);
    }

    #[test]
    fn events_of_a_transaction_follow_its_commands() {
        let mut db = subscribed("Eg$");
        let commands = ["set a 1", "rename a b", "del b"]
            .iter()
            .map(|line| {
                let args = line
                    .split(' ')
                    .map(|a| Bytes::copy_from_slice(a.as_bytes()))
                    .collect();
                (0u8, args)
            })
            .collect();
        run(
            &mut db,
            1_000,
            Op::Multi {
                commands,
                watched: vec![],
            },
        );
        assert_eq!(
            events(&mut db),
            vec![
                "__keyevent@0__:set a",
                "__keyevent@0__:rename_from a",
                "__keyevent@0__:rename_to b",
                "__keyevent@0__:del b",
            ]
        );
    }

    #[test]
    fn the_setting_is_replicated_state_and_survives_a_snapshot() {
        let mut db = Db::new();
        assert_eq!(
            exec(&mut db, 0, "config set notify-keyspace-events Kq"),
            Output::err(
                "ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - Invalid event class character. Use 'Ag$lshzxeKEtmdn'."
            )
        );
        assert_eq!(db.notify_flags(), 0, "a refused value changes nothing");
        let off = db.snapshot_bytes();
        exec(&mut db, 0, "config set notify-keyspace-events KEA");
        assert_eq!(db.info(0).notify_keyspace_events, "AKE");
        let bytes = db.snapshot_bytes();
        assert_ne!(bytes, off);
        let restored = Db::restore(&bytes).unwrap();
        assert_eq!(restored.notify_flags(), db.notify_flags());
        assert_eq!(restored, db);
    }

    #[test]
    fn flags_parse_and_print_as_redis_does() {
        // Redis 7.0.15: CONFIG SET KEA then GET answers AKE; E answers E.
        assert_eq!(parse_flags(b"KEA").map(flags_text).as_deref(), Some("AKE"));
        assert_eq!(parse_flags(b"E").map(flags_text).as_deref(), Some("E"));
        assert_eq!(parse_flags(b"").map(flags_text).as_deref(), Some(""));
        // Redis 7.0.15 prints `A` for all of `A` and then drops `n`.
        assert_eq!(
            parse_flags(b"mnKlg$xedtshz").map(flags_text).as_deref(),
            Some("AKm")
        );
        assert_eq!(
            parse_flags(b"mnKlg$xedshz").map(flags_text).as_deref(),
            Some("g$lshzxednKm")
        );
        assert_eq!(parse_flags(b"AKEn").map(|f| f & NEW), Some(NEW));
        assert_eq!(
            parse_flags(b"gl$shzxetdAnKEm").map(flags_text).as_deref(),
            Some("AKEm")
        );
        assert_eq!(parse_flags(b"Kq"), None);
        assert_eq!(parse_flags(b"a"), None);
        assert_eq!(parse_flags(b"KEA").map(|f| f & NEW), Some(0));
    }
}
