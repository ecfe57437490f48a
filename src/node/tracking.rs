//! Client-side caching on this node: which of its clients may hold which
//! keys (`CLIENT TRACKING`), and the invalidation messages apply's changes
//! send them.
//!
//! Tracking is local to a node, like Redis's: a connection's tracking mode,
//! the keys it read, and its redirection target (a client id, which is a
//! per-node number) live here and nowhere else. What makes it work across
//! the cluster is that every node applies every entry: after each applied
//! entry the driver hands [`TrackingHub::invalidate`] the keys the entry
//! changed (the same record that wakes blocked clients, `Db::take_touches`),
//! whichever node the write came through.
//!
//! Ordering (the promise a cache needs): a tracking client's read remembers
//! its keys while it holds the state machine's read lock, and apply reports
//! changes after releasing the write lock, so for any write W and read R of
//! one key, either R saw W (and is not owed an invalidation for it), or R
//! was remembered before W was applied and W's invalidation is queued to
//! the client before any later read can be served from W's state. The
//! connection drains its queue before appending the replies of a read
//! batch, so the invalidation reaches the client before the reply of every
//! later read of that key it sends this node.
//!
//! Invariants:
//! - With no client tracking (`active() == false`) apply records nothing
//!   and calls nothing here: the cost is one atomic load per batch.
//! - The table holds at most `tracking-table-max-keys` keys (0: no bound);
//!   the oldest key is dropped first, and its readers get an invalidation
//!   for it, as if it had changed (Redis drops random keys).
//! - Keys are tracked by name across databases, as Redis does.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::mpsc;

/// Redis's default `tracking-table-max-keys`.
pub const DEFAULT_MAX_KEYS: u64 = 1_000_000;

/// A client's tracking options (`CLIENT TRACKING ON ...`).
#[derive(Clone, Debug, Default)]
pub struct Mode {
    /// `REDIRECT id` (0: none).
    pub redirect: u64,
    /// `BCAST`.
    pub bcast: bool,
    /// `OPTIN`.
    pub optin: bool,
    /// `OPTOUT`.
    pub optout: bool,
    /// `NOLOOP`.
    pub noloop: bool,
    /// `BCAST` prefixes, sorted (one empty prefix when none was given).
    pub prefixes: BTreeSet<Bytes>,
    /// The client spoke RESP3 when it turned tracking on: a flush's null is
    /// sent in its protocol's form even to a RESP2 redirection target, as
    /// Redis does.
    pub resp3: bool,
    /// The redirection target left (Redis's `CLIENT_TRACKING_BROKEN_REDIR`):
    /// set by the hub, shown by CLIENT INFO and TRACKINGINFO.
    pub broken: Arc<AtomicBool>,
}

/// What a connection is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Push {
    /// `invalidate` with these keys (None: every key, after a flush).
    /// `redirected`: sent on behalf of another client, so a RESP2
    /// connection in Pub/Sub mode gets it on `__redis__:invalidate`.
    Invalidate {
        /// The keys, or None for all.
        keys: Option<Vec<Bytes>>,
        /// Sent for another client that redirects here.
        redirected: bool,
        /// A null (`keys: None`) in RESP3's form (`_`), else RESP2's (`$-1`).
        resp3_null: bool,
    },
    /// `tracking-redir-broken <id>`: the redirection target is gone.
    RedirBroken(u64),
}

/// One change apply reported, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A key was written, deleted, expired or evicted.
    Key(Bytes),
    /// A database (or all of them) was flushed.
    Flush,
}

/// The keys remembered for default-mode clients, oldest first.
#[derive(Debug, Default)]
struct Table {
    next_seq: u64,
    keys: HashMap<Bytes, (u64, BTreeSet<u64>)>,
    order: BTreeMap<u64, Bytes>,
}

impl Table {
    fn remember(&mut self, key: &Bytes, client: u64) {
        if let Some((_, clients)) = self.keys.get_mut(key) {
            clients.insert(client);
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.keys
            .insert(key.clone(), (seq, BTreeSet::from([client])));
        self.order.insert(seq, key.clone());
    }

    fn take(&mut self, key: &[u8]) -> Option<BTreeSet<u64>> {
        let (seq, clients) = self.keys.remove(key)?;
        self.order.remove(&seq);
        Some(clients)
    }

    fn oldest(&mut self) -> Option<(Bytes, BTreeSet<u64>)> {
        let (_, key) = self.order.pop_first()?;
        let (_, clients) = self.keys.remove(&key)?;
        Some((key, clients))
    }

    fn clear(&mut self) {
        self.keys.clear();
        self.order.clear();
    }
}

#[derive(Debug)]
struct Inner {
    /// Every connection of this node (redirection targets included).
    conns: HashMap<u64, mpsc::UnboundedSender<Push>>,
    /// The clients with tracking on.
    modes: HashMap<u64, Mode>,
    table: Table,
    /// BCAST prefix → its clients.
    prefixes: BTreeMap<Bytes, BTreeSet<u64>>,
    max_keys: u64,
}

/// What INFO reports about this node's tracking (see [`TrackingHub::figures`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrackingFigures {
    /// Clients with tracking on.
    pub clients: usize,
    /// Keys remembered.
    pub keys: usize,
    /// Sum over the keys of the clients remembering each.
    pub items: usize,
    /// BCAST prefixes.
    pub prefixes: usize,
}

/// This node's tracking state (see the module docs).
#[derive(Debug)]
pub struct TrackingHub {
    /// Clients with tracking on (read without the lock by apply).
    active: AtomicUsize,
    inner: Mutex<Inner>,
}

impl Default for TrackingHub {
    fn default() -> TrackingHub {
        TrackingHub::new()
    }
}

impl TrackingHub {
    /// No client tracking.
    pub fn new() -> TrackingHub {
        TrackingHub {
            active: AtomicUsize::new(0),
            inner: Mutex::new(Inner {
                conns: HashMap::new(),
                modes: HashMap::new(),
                table: Table::default(),
                prefixes: BTreeMap::new(),
                max_keys: DEFAULT_MAX_KEYS,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True if some client of this node tracks keys (apply then reports
    /// its changes).
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Acquire) > 0
    }

    /// A new connection: its queue of pushes.
    pub fn connect(&self, client: u64) -> mpsc::UnboundedReceiver<Push> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().conns.insert(client, tx);
        rx
    }

    /// A connection closed: tracking off, and it is no redirection target.
    pub fn disconnect(&self, client: u64) {
        let mut inner = self.lock();
        inner.conns.remove(&client);
        self.disable_locked(&mut inner, client);
    }

    /// True if `client` is a connection of this node.
    pub fn exists(&self, client: u64) -> bool {
        self.lock().conns.contains_key(&client)
    }

    /// `CLIENT TRACKING ON` with `mode` (already checked by the caller).
    /// Prefixes add to the client's earlier ones, as in Redis.
    pub fn enable(&self, client: u64, mode: &Mode) {
        let mut inner = self.lock();
        if !inner.modes.contains_key(&client) {
            self.active.fetch_add(1, Ordering::AcqRel);
        }
        for prefix in &mode.prefixes {
            inner
                .prefixes
                .entry(prefix.clone())
                .or_default()
                .insert(client);
        }
        inner.modes.insert(client, mode.clone());
    }

    /// `CLIENT TRACKING OFF` (also RESET and a closed connection). The
    /// keys it read stay in the table until they change (Redis is lazy too).
    pub fn disable(&self, client: u64) {
        let mut inner = self.lock();
        self.disable_locked(&mut inner, client);
    }

    fn disable_locked(&self, inner: &mut Inner, client: u64) {
        let Some(mode) = inner.modes.remove(&client) else {
            return;
        };
        self.active.fetch_sub(1, Ordering::AcqRel);
        for prefix in &mode.prefixes {
            if let Some(clients) = inner.prefixes.get_mut(prefix) {
                clients.remove(&client);
                if clients.is_empty() {
                    inner.prefixes.remove(prefix);
                }
            }
        }
    }

    /// `client` read `keys` (default mode): they are remembered for it.
    /// Called while the read holds the state machine's read lock.
    pub fn remember(&self, client: u64, keys: &[Bytes]) {
        let mut inner = self.lock();
        if !inner.modes.contains_key(&client) {
            return;
        }
        for key in keys {
            inner.table.remember(key, client);
        }
        self.limit(&mut inner);
    }

    /// `CONFIG SET tracking-table-max-keys` (0: no bound).
    pub fn set_max_keys(&self, max_keys: u64) {
        let mut inner = self.lock();
        inner.max_keys = max_keys;
        self.limit(&mut inner);
    }

    /// The current `tracking-table-max-keys`.
    pub fn max_keys(&self) -> u64 {
        self.lock().max_keys
    }

    /// Keys in the table (INFO's `tracking_total_keys`).
    pub fn total_keys(&self) -> usize {
        self.lock().table.keys.len()
    }

    /// INFO's figures: clients with tracking on (`tracking_clients`), keys
    /// remembered, (key, client) pairs (`tracking_total_items`) and BCAST
    /// prefixes (`tracking_total_prefixes`).
    pub fn figures(&self) -> TrackingFigures {
        let inner = self.lock();
        TrackingFigures {
            clients: inner.modes.len(),
            keys: inner.table.keys.len(),
            items: inner.table.keys.values().map(|(_, c)| c.len()).sum(),
            prefixes: inner.prefixes.len(),
        }
    }

    /// Drops the oldest keys past the bound, invalidating them.
    fn limit(&self, inner: &mut Inner) {
        if inner.max_keys == 0 {
            return;
        }
        while inner.table.keys.len() as u64 > inner.max_keys {
            let Some((key, clients)) = inner.table.oldest() else {
                break;
            };
            send_key(inner, &key, &clients, None);
        }
    }

    /// Apply changed these keys (`writer`: the local client whose entry
    /// it was, for NOLOOP). Sends default-mode invalidations at once and
    /// BCAST ones grouped per prefix, as Redis does at the end of an event
    /// loop cycle.
    pub fn invalidate(&self, changes: &[(Option<u64>, Change)]) {
        if changes.is_empty() {
            return;
        }
        let mut inner = self.lock();
        // prefix → key → its last local writer.
        let mut bcast: BTreeMap<Bytes, BTreeMap<Bytes, Option<u64>>> = BTreeMap::new();
        for (writer, change) in changes {
            match change {
                Change::Flush => {
                    // Redis sends every tracking client a null: "all keys".
                    let clients: Vec<u64> = inner.modes.keys().copied().collect();
                    for client in clients {
                        send(&mut inner, client, None);
                    }
                    inner.table.clear();
                }
                Change::Key(key) => {
                    for (prefix, _) in inner.prefixes.iter() {
                        if key.starts_with(prefix) {
                            bcast
                                .entry(prefix.clone())
                                .or_default()
                                .insert(key.clone(), *writer);
                        }
                    }
                    if let Some(clients) = inner.table.take(key) {
                        send_key(&mut inner, key, &clients, *writer);
                    }
                }
            }
        }
        for (prefix, keys) in bcast {
            let clients: Vec<u64> = inner
                .prefixes
                .get(&prefix)
                .map(|c| c.iter().copied().collect())
                .unwrap_or_default();
            for client in clients {
                let noloop = inner.modes.get(&client).is_some_and(|m| m.noloop);
                let list: Vec<Bytes> = keys
                    .iter()
                    .filter(|(_, w)| !(noloop && **w == Some(client)))
                    .map(|(k, _)| k.clone())
                    .collect();
                if !list.is_empty() {
                    send(&mut inner, client, Some(list));
                }
            }
        }
    }
}

/// Invalidates `key` for the default-mode clients that read it.
fn send_key(inner: &mut Inner, key: &Bytes, clients: &BTreeSet<u64>, writer: Option<u64>) {
    for &client in clients {
        let Some(mode) = inner.modes.get(&client) else {
            continue;
        };
        // A client that switched to BCAST gets no default-mode leftovers.
        if mode.bcast || (mode.noloop && writer == Some(client)) {
            continue;
        }
        send(inner, client, Some(vec![key.clone()]));
    }
}

/// Sends one invalidation for `client` (to its redirection target if it
/// has one, or a `tracking-redir-broken` when that one left).
fn send(inner: &mut Inner, client: u64, keys: Option<Vec<Bytes>>) {
    let Some(mode) = inner.modes.get(&client) else {
        return;
    };
    let resp3_null = mode.resp3;
    let (to, redirected) = match mode.redirect {
        0 => (client, false),
        target => (target, true),
    };
    if redirected && !inner.conns.contains_key(&to) {
        mode.broken.store(true, Ordering::Release);
        let redirect = mode.redirect;
        if let Some(tx) = inner.conns.get(&client) {
            let _ = tx.send(Push::RedirBroken(redirect));
        }
        return;
    }
    if let Some(tx) = inner.conns.get(&to) {
        let _ = tx.send(Push::Invalidate {
            keys,
            redirected,
            resp3_null,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn key(s: &str) -> (Option<u64>, Change) {
        (None, Change::Key(b(s)))
    }

    fn pushes(rx: &mut mpsc::UnboundedReceiver<Push>) -> Vec<Push> {
        let mut out = Vec::new();
        while let Ok(p) = rx.try_recv() {
            out.push(p);
        }
        out
    }

    fn inv(keys: &[&str]) -> Push {
        Push::Invalidate {
            keys: Some(keys.iter().map(|k| b(k)).collect()),
            redirected: false,
            resp3_null: false,
        }
    }

    #[test]
    fn a_read_key_is_invalidated_once_when_it_changes() {
        let hub = TrackingHub::new();
        let mut rx = hub.connect(1);
        assert!(!hub.active());
        hub.enable(1, &Mode::default());
        assert!(hub.active());
        hub.remember(1, &[b("k")]);
        hub.invalidate(&[key("other"), key("k")]);
        assert_eq!(pushes(&mut rx), vec![inv(&["k"])]);
        // Forgotten once invalidated, until read again.
        hub.invalidate(&[key("k")]);
        assert!(pushes(&mut rx).is_empty());
        assert_eq!(hub.total_keys(), 0);
    }

    /// INFO's `tracking_clients` and `tracking_total_*` figures.
    #[test]
    fn figures_count_clients_keys_items_and_prefixes() {
        let hub = TrackingHub::new();
        let _rx1 = hub.connect(1);
        let _rx2 = hub.connect(2);
        let _rx3 = hub.connect(3);
        assert_eq!(hub.figures(), TrackingFigures::default());
        hub.enable(1, &Mode::default());
        hub.enable(2, &Mode::default());
        hub.enable(
            3,
            &Mode {
                bcast: true,
                prefixes: [b("a:"), b("b:")].into(),
                ..Mode::default()
            },
        );
        hub.remember(1, &[b("k"), b("j")]);
        hub.remember(2, &[b("k")]);
        let want = TrackingFigures {
            clients: 3,
            keys: 2,
            items: 3,
            prefixes: 2,
        };
        assert_eq!(hub.figures(), want);
        hub.disable(3);
        assert_eq!(hub.figures().clients, 2);
        assert_eq!(hub.figures().prefixes, 0);
    }

    #[test]
    fn noloop_skips_the_clients_own_writes_only() {
        let hub = TrackingHub::new();
        let mut rx = hub.connect(1);
        hub.enable(
            1,
            &Mode {
                noloop: true,
                ..Mode::default()
            },
        );
        hub.remember(1, &[b("k")]);
        hub.invalidate(&[(Some(1), Change::Key(b("k")))]);
        assert!(pushes(&mut rx).is_empty());
        hub.remember(1, &[b("k")]);
        hub.invalidate(&[(Some(2), Change::Key(b("k")))]);
        assert_eq!(pushes(&mut rx), vec![inv(&["k"])]);
    }

    #[test]
    fn bcast_sends_matching_keys_per_prefix_sorted() {
        let hub = TrackingHub::new();
        let mut rx = hub.connect(1);
        hub.enable(
            1,
            &Mode {
                bcast: true,
                prefixes: [b("a:"), b("b:")].into(),
                ..Mode::default()
            },
        );
        hub.invalidate(&[key("b:1"), key("a:2"), key("c"), key("a:1"), key("a:2")]);
        assert_eq!(pushes(&mut rx), vec![inv(&["a:1", "a:2"]), inv(&["b:1"])]);
        hub.disable(1);
        assert!(!hub.active());
        hub.invalidate(&[key("a:1")]);
        assert!(pushes(&mut rx).is_empty());
    }

    #[test]
    fn flush_sends_null_to_every_tracking_client() {
        let hub = TrackingHub::new();
        let mut one = hub.connect(1);
        let mut two = hub.connect(2);
        hub.enable(1, &Mode::default());
        hub.remember(1, &[b("k")]);
        hub.invalidate(&[(None, Change::Flush), key("k")]);
        let null = Push::Invalidate {
            keys: None,
            redirected: false,
            resp3_null: false,
        };
        assert_eq!(pushes(&mut one), vec![null]);
        assert!(pushes(&mut two).is_empty());
    }

    #[test]
    fn redirection_goes_to_the_target_and_reports_when_it_left() {
        let hub = TrackingHub::new();
        let mut tracker = hub.connect(1);
        let mut target = hub.connect(2);
        let mode = Mode {
            redirect: 2,
            ..Mode::default()
        };
        hub.enable(1, &mode);
        hub.remember(1, &[b("k")]);
        hub.invalidate(&[key("k")]);
        assert_eq!(
            pushes(&mut target),
            vec![Push::Invalidate {
                keys: Some(vec![b("k")]),
                redirected: true,
                resp3_null: false,
            }]
        );
        assert!(pushes(&mut tracker).is_empty());
        hub.disconnect(2);
        hub.remember(1, &[b("k")]);
        hub.invalidate(&[key("k")]);
        assert_eq!(pushes(&mut tracker), vec![Push::RedirBroken(2)]);
        assert!(mode.broken.load(Ordering::Acquire));
    }

    #[test]
    fn the_table_is_bounded_and_drops_its_oldest_key_first() {
        let hub = TrackingHub::new();
        let mut rx = hub.connect(1);
        hub.enable(1, &Mode::default());
        hub.set_max_keys(2);
        hub.remember(1, &[b("a"), b("b")]);
        hub.remember(1, &[b("a")]);
        assert!(pushes(&mut rx).is_empty());
        hub.remember(1, &[b("c")]);
        assert_eq!(pushes(&mut rx), vec![inv(&["a"])]);
        assert_eq!(hub.total_keys(), 2);
        hub.set_max_keys(1);
        assert_eq!(pushes(&mut rx), vec![inv(&["b"])]);
        hub.set_max_keys(0);
        hub.remember(1, &[b("x"), b("y"), b("z")]);
        assert_eq!(hub.total_keys(), 4);
    }

    #[test]
    fn a_client_that_switched_to_bcast_gets_no_leftovers() {
        let hub = TrackingHub::new();
        let mut rx = hub.connect(1);
        hub.enable(1, &Mode::default());
        hub.remember(1, &[b("k")]);
        hub.disable(1);
        hub.enable(
            1,
            &Mode {
                bcast: true,
                prefixes: [b("z")].into(),
                ..Mode::default()
            },
        );
        hub.invalidate(&[key("k")]);
        assert!(pushes(&mut rx).is_empty());
    }
}
