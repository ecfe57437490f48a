//! The cluster's Pub/Sub registry and the log operations that change it.
//!
//! Every subscription of every client on every node is replicated state:
//! `SUBSCRIBE`, `UNSUBSCRIBE` (and their pattern and shard forms), a
//! client's disconnect and a node's restart are log entries
//! ([`PubSubOp`]), applied in log order on every replica, so every replica
//! holds the same [`Registry`] at the same index. `PUBLISH` is a log entry
//! too: at apply its receiver count is computed from the registry (the same
//! number on every replica, so the reply does not depend on which node
//! answers), and the frames for this node's own subscribers are queued in
//! the [`Outbox`], which the node takes after each applied batch and hands
//! to the connections.
//!
//! Invariants:
//! - `channels`, `patterns` and `shard` map a name to a non-empty set of
//!   subscribers; `clients` is the exact inverse of the three (a subscriber
//!   is in `clients` iff it holds at least one subscription). Empty sets are
//!   removed, so `PUBSUB CHANNELS` never lists a channel nobody listens to.
//! - Everything is ordered (`BTreeMap`/`BTreeSet`): delivery order, the
//!   order of unsubscribe-all replies and snapshot bytes are the same on
//!   every replica and every run.
//! - The outbox only ever holds frames for the subscriber identity set with
//!   [`Registry::set_local`] (this process); it is local, not replicated,
//!   and not part of equality or snapshots.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::Output;

/// One subscribing connection, cluster-wide: the node it is connected to,
/// that node process's incarnation (so a restarted node's new clients never
/// inherit a crashed process's subscriptions), and its client id there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Subscriber {
    /// Node id.
    pub node: u64,
    /// The node process's incarnation (chosen at start).
    pub incarnation: u64,
    /// Client id on that node (`CLIENT ID`).
    pub client: u64,
}

/// Which namespace a subscription is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// `SUBSCRIBE` channels.
    Channel,
    /// `PSUBSCRIBE` glob patterns.
    Pattern,
    /// `SSUBSCRIBE` shard channels (one shard: the whole cluster).
    Shard,
}

impl Kind {
    fn subscribe_word(self) -> &'static str {
        match self {
            Kind::Channel => "subscribe",
            Kind::Pattern => "psubscribe",
            Kind::Shard => "ssubscribe",
        }
    }

    fn unsubscribe_word(self) -> &'static str {
        match self {
            Kind::Channel => "unsubscribe",
            Kind::Pattern => "punsubscribe",
            Kind::Shard => "sunsubscribe",
        }
    }
}

/// A Pub/Sub change or message, as carried by [`super::Op::PubSub`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PubSubOp {
    /// `SUBSCRIBE` / `PSUBSCRIBE` / `SSUBSCRIBE` of `names` by `who`.
    Subscribe {
        /// The client.
        who: Subscriber,
        /// The namespace.
        kind: Kind,
        /// Channels or patterns, as given (repeats answered each time).
        names: Vec<Bytes>,
    },
    /// `UNSUBSCRIBE` and its forms; no names: all of `who`'s in `kind`.
    Unsubscribe {
        /// The client.
        who: Subscriber,
        /// The namespace.
        kind: Kind,
        /// Channels or patterns (empty: all).
        names: Vec<Bytes>,
    },
    /// `PUBLISH` (or `SPUBLISH` with `shard`): the output is the number of
    /// receivers cluster-wide.
    Publish {
        /// The channel.
        channel: Bytes,
        /// The message.
        message: Bytes,
        /// `SPUBLISH`: shard subscribers only.
        shard: bool,
    },
    /// These clients closed their connections: all their subscriptions go.
    DropClients {
        /// The clients.
        who: Vec<Subscriber>,
    },
    /// Node `node` (re)started as `incarnation`: every subscription of its
    /// other incarnations goes (their connections are gone).
    DropNode {
        /// Node id.
        node: u64,
        /// The incarnation that keeps its subscriptions.
        incarnation: u64,
    },
    /// Reads served by one node missed these keys (database, key) while
    /// `notify-keyspace-events` had `m`: their `keymiss` events, sent at
    /// apply by every node (`kv/notify.rs`; applied by the map, not here).
    KeyMiss {
        /// The keys, in the order the reads missed them.
        misses: Vec<(u8, Bytes)>,
    },
}

/// A frame for one local subscriber, in log order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// `message channel payload` (or `smessage` when `shard`).
    Message {
        /// The channel.
        channel: Bytes,
        /// The payload.
        message: Bytes,
        /// Sent as `smessage`.
        shard: bool,
    },
    /// `pmessage pattern channel payload`.
    PMessage {
        /// The matching pattern.
        pattern: Bytes,
        /// The channel.
        channel: Bytes,
        /// The payload.
        message: Bytes,
    },
    /// A (un)subscribe confirmation: `word name count`; `name` is nil for
    /// an unsubscribe-all with nothing to unsubscribe.
    Confirm {
        /// `subscribe`, `punsubscribe` ...
        word: &'static str,
        /// The channel or pattern.
        name: Option<Bytes>,
        /// The client's subscriptions after it, as Redis counts them
        /// (channels + patterns; shard channels on their own).
        count: i64,
    },
    /// Not sent: marks that the (un)subscribe entry that preceded it has
    /// been applied here, so the connection knows its confirmations are all
    /// in.
    Applied,
}

impl Frame {
    /// The frame as a reply array (a push in RESP3); None for
    /// [`Frame::Applied`].
    pub fn output(&self) -> Option<Output> {
        let word = |w: &'static str| Output::bulk(Bytes::from_static(w.as_bytes()));
        Some(match self {
            Frame::Message {
                channel,
                message,
                shard,
            } => Output::Array(vec![
                word(if *shard { "smessage" } else { "message" }),
                Output::bulk(channel.clone()),
                Output::bulk(message.clone()),
            ]),
            Frame::PMessage {
                pattern,
                channel,
                message,
            } => Output::Array(vec![
                word("pmessage"),
                Output::bulk(pattern.clone()),
                Output::bulk(channel.clone()),
                Output::bulk(message.clone()),
            ]),
            Frame::Confirm {
                word: w,
                name,
                count,
            } => Output::Array(vec![
                word(w),
                Output::Bulk(name.clone()),
                Output::Integer(*count),
            ]),
            Frame::Applied => return None,
        })
    }

    /// About how many bytes the frame takes on the wire.
    pub fn wire_bytes(&self) -> usize {
        const FRAME: usize = 48;
        match self {
            Frame::Message {
                channel, message, ..
            } => FRAME + channel.len() + message.len(),
            Frame::PMessage {
                pattern,
                channel,
                message,
            } => FRAME + pattern.len() + channel.len() + message.len(),
            Frame::Confirm { name, .. } => FRAME + name.as_ref().map_or(0, Bytes::len),
            Frame::Applied => 0,
        }
    }
}

/// Frames for this process's subscribers, queued by apply (local state).
#[derive(Debug, Default)]
pub struct Outbox {
    local: Option<(u64, u64)>,
    frames: Vec<(u64, Frame)>,
}

impl Clone for Outbox {
    fn clone(&self) -> Outbox {
        Outbox {
            local: self.local,
            frames: Vec::new(),
        }
    }
}

impl PartialEq for Outbox {
    fn eq(&self, _: &Outbox) -> bool {
        true // local delivery state, like `Touched`
    }
}
impl Eq for Outbox {}

/// One client's subscriptions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Held {
    channels: BTreeSet<Bytes>,
    patterns: BTreeSet<Bytes>,
    shard: BTreeSet<Bytes>,
}

impl Held {
    fn set(&mut self, kind: Kind) -> &mut BTreeSet<Bytes> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard,
        }
    }

    /// Redis's count in a confirmation of `kind`.
    fn count(&self, kind: Kind) -> i64 {
        let n = match kind {
            Kind::Channel | Kind::Pattern => self.channels.len() + self.patterns.len(),
            Kind::Shard => self.shard.len(),
        };
        n as i64
    }

    fn is_empty(&self) -> bool {
        self.channels.is_empty() && self.patterns.is_empty() && self.shard.is_empty()
    }
}

/// Every subscription in the cluster (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    channels: BTreeMap<Bytes, BTreeSet<Subscriber>>,
    patterns: BTreeMap<Bytes, BTreeSet<Subscriber>>,
    shard: BTreeMap<Bytes, BTreeSet<Subscriber>>,
    clients: BTreeMap<Subscriber, Held>,
    #[serde(skip)]
    outbox: Outbox,
}

impl Registry {
    fn map(&mut self, kind: Kind) -> &mut BTreeMap<Bytes, BTreeSet<Subscriber>> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard,
        }
    }

    /// Sets which subscribers are this process's (node id, incarnation):
    /// apply queues frames for them only.
    pub fn set_local(&mut self, node: u64, incarnation: u64) {
        self.outbox.local = Some((node, incarnation));
    }

    /// Takes the frames queued since the last call: `(client id, frame)` in
    /// log order.
    pub fn take_frames(&mut self) -> Vec<(u64, Frame)> {
        std::mem::take(&mut self.outbox.frames)
    }

    fn send(&mut self, who: Subscriber, frame: Frame) {
        if self.outbox.local == Some((who.node, who.incarnation)) {
            self.outbox.frames.push((who.client, frame));
        }
    }

    /// Applies one operation; the output is what its client gets back
    /// (PUBLISH's count; `OK` for the rest, whose replies are frames).
    pub fn apply(&mut self, op: &PubSubOp) -> Output {
        match op {
            PubSubOp::Subscribe { who, kind, names } => {
                for name in names {
                    self.map(*kind)
                        .entry(name.clone())
                        .or_default()
                        .insert(*who);
                    let held = self.clients.entry(*who).or_default();
                    held.set(*kind).insert(name.clone());
                    let count = held.count(*kind);
                    self.send(
                        *who,
                        Frame::Confirm {
                            word: kind.subscribe_word(),
                            name: Some(name.clone()),
                            count,
                        },
                    );
                }
                self.send(*who, Frame::Applied);
                Output::Ok
            }
            PubSubOp::Unsubscribe { who, kind, names } => {
                let names: Vec<Bytes> = if names.is_empty() {
                    self.clients
                        .get_mut(who)
                        .map(|held| held.set(*kind).iter().cloned().collect())
                        .unwrap_or_default()
                } else {
                    names.clone()
                };
                if names.is_empty() {
                    let count = self.clients.get(who).map_or(0, |h| h.count(*kind));
                    self.send(
                        *who,
                        Frame::Confirm {
                            word: kind.unsubscribe_word(),
                            name: None,
                            count,
                        },
                    );
                }
                for name in names {
                    self.remove(*who, *kind, &name);
                    let count = self.clients.get(who).map_or(0, |h| h.count(*kind));
                    self.send(
                        *who,
                        Frame::Confirm {
                            word: kind.unsubscribe_word(),
                            name: Some(name),
                            count,
                        },
                    );
                }
                self.send(*who, Frame::Applied);
                Output::Ok
            }
            PubSubOp::Publish {
                channel,
                message,
                shard,
            } => Output::Integer(self.publish(channel, message, *shard)),
            PubSubOp::DropClients { who } => {
                for w in who {
                    self.drop_client(*w);
                }
                Output::Ok
            }
            PubSubOp::DropNode { node, incarnation } => {
                let gone: Vec<Subscriber> = self
                    .clients
                    .keys()
                    .filter(|s| s.node == *node && s.incarnation != *incarnation)
                    .copied()
                    .collect();
                for w in gone {
                    self.drop_client(w);
                }
                Output::Ok
            }
            // Events: [`super::Db::apply`] sends them (they need the flags).
            PubSubOp::KeyMiss { .. } => Output::Ok,
        }
    }

    /// Removes one subscription (if held), keeping the invariants.
    fn remove(&mut self, who: Subscriber, kind: Kind, name: &Bytes) {
        let map = self.map(kind);
        if let Some(set) = map.get_mut(name) {
            set.remove(&who);
            if set.is_empty() {
                map.remove(name);
            }
        }
        if let Some(held) = self.clients.get_mut(&who) {
            held.set(kind).remove(name);
            if held.is_empty() {
                self.clients.remove(&who);
            }
        }
    }

    fn drop_client(&mut self, who: Subscriber) {
        let Some(held) = self.clients.remove(&who) else {
            return;
        };
        for (kind, names) in [
            (Kind::Channel, held.channels),
            (Kind::Pattern, held.patterns),
            (Kind::Shard, held.shard),
        ] {
            let map = self.map(kind);
            for name in names {
                if let Some(set) = map.get_mut(&name) {
                    set.remove(&who);
                    if set.is_empty() {
                        map.remove(&name);
                    }
                }
            }
        }
    }

    /// Counts the receivers and queues the local ones' frames: channel
    /// subscribers first, then each matching pattern's (in pattern order),
    /// as Redis delivers.
    fn publish(&mut self, channel: &Bytes, message: &Bytes, shard: bool) -> i64 {
        let mut count = 0;
        let mut frames = Vec::new();
        let direct = if shard { &self.shard } else { &self.channels };
        if let Some(set) = direct.get(channel) {
            for who in set {
                count += 1;
                frames.push((
                    *who,
                    Frame::Message {
                        channel: channel.clone(),
                        message: message.clone(),
                        shard,
                    },
                ));
            }
        }
        if !shard {
            for (pattern, set) in &self.patterns {
                if !super::glob::matches(pattern, channel, false) {
                    continue;
                }
                for who in set {
                    count += 1;
                    frames.push((
                        *who,
                        Frame::PMessage {
                            pattern: pattern.clone(),
                            channel: channel.clone(),
                            message: message.clone(),
                        },
                    ));
                }
            }
        }
        for (who, frame) in frames {
            self.send(who, frame);
        }
        count
    }

    /// A keyspace event: delivered like a `PUBLISH` to this node's
    /// subscribers (channel subscribers, then matching patterns), nothing
    /// counted. Nothing to do when no one subscribes.
    pub(crate) fn publish_event(&mut self, channel: &Bytes, message: &Bytes) {
        if !self.clients.is_empty() {
            self.publish(channel, message, false);
        }
    }

    /// `PUBSUB CHANNELS [pattern]` (or `SHARDCHANNELS`): active channels,
    /// in byte order.
    pub fn channel_names(&self, pattern: Option<&[u8]>, shard: bool) -> Vec<Bytes> {
        let map = if shard { &self.shard } else { &self.channels };
        map.keys()
            .filter(|c| pattern.is_none_or(|p| super::glob::matches(p, c, false)))
            .cloned()
            .collect()
    }

    /// Number of active channels (or shard channels), cluster-wide.
    pub fn channel_count(&self, shard: bool) -> usize {
        if shard {
            self.shard.len()
        } else {
            self.channels.len()
        }
    }

    /// `PUBSUB NUMSUB` (or `SHARDNUMSUB`): subscribers of one channel,
    /// cluster-wide.
    pub fn numsub(&self, channel: &[u8], shard: bool) -> usize {
        let map = if shard { &self.shard } else { &self.channels };
        map.get(channel).map_or(0, BTreeSet::len)
    }

    /// `PUBSUB NUMPAT`: distinct patterns subscribed to, cluster-wide (as
    /// Redis counts: a pattern held by two clients counts once).
    pub fn numpat(&self) -> usize {
        self.patterns.len()
    }

    /// True when no one subscribes to anything.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(node: u64, client: u64) -> Subscriber {
        Subscriber {
            node,
            incarnation: 7,
            client,
        }
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn sub(r: &mut Registry, w: Subscriber, kind: Kind, names: &[&str]) {
        r.apply(&PubSubOp::Subscribe {
            who: w,
            kind,
            names: names.iter().map(|n| b(n)).collect(),
        });
    }

    fn publish(r: &mut Registry, channel: &str, message: &str) -> Output {
        r.apply(&PubSubOp::Publish {
            channel: b(channel),
            message: b(message),
            shard: false,
        })
    }

    #[test]
    fn publish_counts_every_node_and_delivers_only_local_frames() {
        let mut r = Registry::default();
        r.set_local(1, 7);
        sub(&mut r, who(1, 10), Kind::Channel, &["ch"]);
        sub(&mut r, who(2, 10), Kind::Channel, &["ch"]);
        sub(&mut r, who(3, 4), Kind::Pattern, &["c*", "x*"]);
        sub(&mut r, who(1, 11), Kind::Pattern, &["c*"]);
        r.take_frames();
        assert_eq!(publish(&mut r, "ch", "hi"), Output::Integer(4));
        assert_eq!(
            r.take_frames(),
            vec![
                (
                    10,
                    Frame::Message {
                        channel: b("ch"),
                        message: b("hi"),
                        shard: false
                    }
                ),
                (
                    11,
                    Frame::PMessage {
                        pattern: b("c*"),
                        channel: b("ch"),
                        message: b("hi")
                    }
                ),
            ]
        );
        assert_eq!(publish(&mut r, "nobody", "x"), Output::Integer(0));
        assert_eq!(r.numsub(b"ch", false), 2);
        assert_eq!(r.numpat(), 2);
        assert_eq!(r.channel_names(None, false), vec![b("ch")]);
        assert_eq!(r.channel_names(Some(b"z*"), false), Vec::<Bytes>::new());
    }

    #[test]
    fn confirmations_count_like_redis() {
        // Redis 7.0.15: SUBSCRIBE a b → 1, 2; PSUBSCRIBE n* → 3;
        // SSUBSCRIBE s → 1 (its own count); UNSUBSCRIBE → a 2, b 1;
        // PUNSUBSCRIBE → n* 0; UNSUBSCRIBE again → nil 0.
        let mut r = Registry::default();
        r.set_local(1, 7);
        let w = who(1, 5);
        sub(&mut r, w, Kind::Channel, &["a", "b"]);
        sub(&mut r, w, Kind::Pattern, &["n*"]);
        sub(&mut r, w, Kind::Shard, &["s"]);
        for kind in [Kind::Channel, Kind::Pattern, Kind::Channel] {
            r.apply(&PubSubOp::Unsubscribe {
                who: w,
                kind,
                names: vec![],
            });
        }
        let counts: Vec<(&str, Option<Bytes>, i64)> = r
            .take_frames()
            .into_iter()
            .filter_map(|(_, f)| match f {
                Frame::Confirm { word, name, count } => Some((word, name, count)),
                _ => None,
            })
            .collect();
        assert_eq!(
            counts,
            vec![
                ("subscribe", Some(b("a")), 1),
                ("subscribe", Some(b("b")), 2),
                ("psubscribe", Some(b("n*")), 3),
                ("ssubscribe", Some(b("s")), 1),
                ("unsubscribe", Some(b("a")), 2),
                ("unsubscribe", Some(b("b")), 1),
                ("punsubscribe", Some(b("n*")), 0),
                ("unsubscribe", None, 0),
            ]
        );
        // Still holding the shard channel.
        assert!(!r.is_empty());
        assert_eq!(
            r.apply(&PubSubOp::Publish {
                channel: b("s"),
                message: b("m"),
                shard: true
            }),
            Output::Integer(1)
        );
    }

    #[test]
    fn drops_remove_every_trace_and_keep_the_new_incarnation() {
        let mut r = Registry::default();
        let old = Subscriber {
            node: 2,
            incarnation: 1,
            client: 3,
        };
        let new = Subscriber {
            node: 2,
            incarnation: 2,
            client: 3,
        };
        sub(&mut r, old, Kind::Channel, &["ch"]);
        sub(&mut r, new, Kind::Channel, &["ch"]);
        sub(&mut r, who(1, 1), Kind::Pattern, &["p*"]);
        r.apply(&PubSubOp::DropNode {
            node: 2,
            incarnation: 2,
        });
        assert_eq!(r.numsub(b"ch", false), 1);
        r.apply(&PubSubOp::DropClients {
            who: vec![new, who(1, 1)],
        });
        assert!(r.is_empty());
        assert_eq!(r, Registry::default());
        assert_eq!(r.numpat(), 0);
        assert!(r.channel_names(None, false).is_empty());
    }

    /// The clean-up a node proposes at every start must not change a map
    /// it finds nothing to drop in: the restart test compares the state
    /// rebuilt from the WAL (plus that entry) with the state before the stop.
    #[test]
    fn a_start_up_clean_up_that_drops_nothing_leaves_the_state_unchanged() {
        use crate::kv::{Command, Db, Op};
        let mut db = Db::new();
        db.apply(&Command {
            ts_ms: 1_000,
            op: Op::Set {
                key: Bytes::from_static(b"k"),
                value: Bytes::from_static(b"v"),
            },
        });
        let before = db.snapshot_bytes();
        db.apply(&Command {
            ts_ms: 9_000,
            op: Op::PubSub(PubSubOp::DropNode {
                node: 2,
                incarnation: 5,
            }),
        });
        assert_eq!(db.snapshot_bytes(), before);
    }

    #[test]
    fn unsubscribing_what_is_not_held_is_confirmed_and_changes_nothing() {
        let mut r = Registry::default();
        r.set_local(1, 7);
        r.apply(&PubSubOp::Unsubscribe {
            who: who(1, 1),
            kind: Kind::Pattern,
            names: vec![b("q")],
        });
        assert_eq!(
            r.take_frames(),
            vec![
                (
                    1,
                    Frame::Confirm {
                        word: "punsubscribe",
                        name: Some(b("q")),
                        count: 0
                    }
                ),
                (1, Frame::Applied)
            ]
        );
        assert!(r.is_empty());
    }
}
