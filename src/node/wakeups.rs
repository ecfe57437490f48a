//! Clients blocked on keys (BLPOP, BLMOVE, BZPOPMIN ...) and the wake-ups
//! apply sends them.
//!
//! A blocked client registers the keys it waits on ([`KeyWaits::register`])
//! and gets a [`Waiter`]. After every applied batch the node reports the keys
//! apply created or changed ([`KeyWaits::touched`]); each such key wakes the
//! client that has waited on it longest on this node — only that one, so
//! clients blocked on one node are served in the order they blocked, as in
//! Redis, and one push costs one pop attempt, not one per waiter. A woken
//! client that gets nothing stays first in line. When a client stops
//! waiting (served, timed out, disconnected) the next client in line on each
//! of its keys is woken, so an element is never left behind while someone
//! waits for it.
//!
//! Wake-ups are hints: the woken client re-checks its keys and makes its
//! pop attempt through the log, so a spurious or lost race costs one attempt,
//! never a wrong reply. Waiting itself is local to this node and not
//! replicated.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::Notify;

/// The clients blocked on keys at this node.
#[derive(Debug, Default)]
pub struct KeyWaits {
    inner: Mutex<Inner>,
    /// Registered waiters (read without the lock by apply).
    waiting: AtomicUsize,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    /// `(db, key)` → waiters in the order they blocked.
    by_key: HashMap<(u8, Bytes), VecDeque<u64>>,
    /// Waiter id → its wake-up handle and keys.
    waiters: HashMap<u64, Registered>,
}

#[derive(Debug)]
struct Registered {
    db: u8,
    keys: Vec<Bytes>,
    notify: Arc<Notify>,
}

impl Inner {
    /// Wakes the first waiter on `(db, key)`, if any.
    fn wake_first(&self, db: u8, key: &Bytes) {
        let first = self
            .by_key
            .get(&(db, key.clone()))
            .and_then(|queue| queue.front());
        if let Some(registered) = first.and_then(|id| self.waiters.get(id)) {
            registered.notify.notify_one();
        }
    }
}

impl KeyWaits {
    /// No one waiting.
    pub fn new() -> KeyWaits {
        KeyWaits::default()
    }

    /// True if any client is blocked here (apply then reports what it
    /// touched).
    pub fn any(&self) -> bool {
        self.waiting.load(Ordering::Acquire) > 0
    }

    /// Number of blocked clients (INFO's `blocked_clients`).
    pub fn count(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Blocks a client on `keys` of database `db`, last in line on each.
    pub fn register(self: &Arc<Self>, db: u8, keys: Vec<Bytes>) -> Waiter {
        let notify = Arc::new(Notify::new());
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let id = inner.next_id;
        inner.next_id += 1;
        for key in &keys {
            let queue = inner.by_key.entry((db, key.clone())).or_default();
            if !queue.contains(&id) {
                queue.push_back(id);
            }
        }
        inner.waiters.insert(
            id,
            Registered {
                db,
                keys,
                notify: Arc::clone(&notify),
            },
        );
        self.waiting.fetch_add(1, Ordering::AcqRel);
        Waiter {
            hub: Arc::clone(self),
            id,
            notify,
        }
    }

    /// Apply created or changed these keys: wakes the first waiter on each.
    pub fn touched(&self, keys: &[(u8, Bytes)]) {
        if keys.is_empty() || !self.any() {
            return;
        }
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for (db, key) in keys {
            inner.wake_first(*db, key);
        }
    }

    /// Every key may have changed (a snapshot was installed): wakes the
    /// first waiter on every key.
    pub fn touched_all(&self) {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for ((db, key), _) in inner.by_key.iter() {
            inner.wake_first(*db, key);
        }
    }

    fn unregister(&self, id: u64) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(registered) = inner.waiters.remove(&id) else {
            return;
        };
        for key in &registered.keys {
            let slot = (registered.db, key.clone());
            let Some(queue) = inner.by_key.get_mut(&slot) else {
                continue;
            };
            queue.retain(|&other| other != id);
            if queue.is_empty() {
                inner.by_key.remove(&slot);
            } else {
                // The next in line gets its chance at what this one may
                // have left (or was woken for and will not take).
                inner.wake_first(registered.db, key);
            }
        }
        self.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One blocked client's place in line; dropping it leaves the line.
#[derive(Debug)]
pub struct Waiter {
    hub: Arc<KeyWaits>,
    id: u64,
    notify: Arc<Notify>,
}

impl Waiter {
    /// Resolves when one of the keys may have become ready (at once if a
    /// wake-up came since the last one was taken).
    pub async fn notified(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.hub.unregister(self.id);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn key(k: &str) -> Bytes {
        Bytes::copy_from_slice(k.as_bytes())
    }

    async fn woken(waiter: &Waiter) -> bool {
        tokio::time::timeout(Duration::from_millis(20), waiter.notified())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_touch_wakes_only_the_first_in_line() {
        let hub = Arc::new(KeyWaits::new());
        let first = hub.register(0, vec![key("q")]);
        let second = hub.register(0, vec![key("q")]);
        assert_eq!(hub.count(), 2);
        hub.touched(&[(0, key("q"))]);
        assert!(woken(&first).await);
        assert!(!woken(&second).await, "only the first is woken");
        // Another database's key of the same name wakes no one.
        hub.touched(&[(1, key("q"))]);
        assert!(!woken(&first).await);
    }

    #[tokio::test]
    async fn leaving_the_line_wakes_the_next() {
        let hub = Arc::new(KeyWaits::new());
        let first = hub.register(0, vec![key("a"), key("b")]);
        let second = hub.register(0, vec![key("b")]);
        let third = hub.register(0, vec![key("c")]);
        drop(first);
        assert!(woken(&second).await, "next in line on b");
        assert!(!woken(&third).await, "c had no one before it");
        drop(second);
        drop(third);
        assert_eq!(hub.count(), 0);
        assert!(!hub.any());
        let inner = hub.inner.lock().unwrap();
        assert!(inner.by_key.is_empty() && inner.waiters.is_empty());
    }

    #[tokio::test]
    async fn a_wake_up_before_waiting_is_kept() {
        let hub = Arc::new(KeyWaits::new());
        let waiter = hub.register(3, vec![key("k")]);
        hub.touched(&[(3, key("k"))]);
        assert!(woken(&waiter).await);
        hub.touched_all();
        assert!(woken(&waiter).await);
    }
}
