//! This node's Pub/Sub connections: where apply's frames go, and the
//! clean-up entries a node owes the cluster's registry.
//!
//! The registry of subscriptions is replicated (`kv/pubsub.rs`); this hub is
//! local. A connection registers its client id before its first
//! (un)subscribe entry is proposed and gets a receiver; after each applied
//! batch the driver hands the frames apply queued for this process's
//! subscribers to [`PubSubHub::deliver`], before any write of that batch is
//! answered, so a connection that has its (un)subscribe acknowledged has
//! every frame of the entries before it. Frames are appended to an
//! unbounded queue that the connection drains into its output buffer, where
//! the `pubsub` client output limits bound it (as in Redis, a limit of 0
//! means no bound).
//!
//! A connection that leaves ([`PubSubHub::deregister`]) is queued for a
//! `DropClients` entry, and a starting node owes one `DropNode` entry for
//! its earlier incarnations; [`cleanup`] proposes both, retrying until the
//! cluster takes them, so a subscriber's departure or a crash leaves no
//! subscription behind once the cluster has a leader again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify};

use crate::kv::pubsub::{Frame, PubSubOp, Subscriber};

/// The local end of Pub/Sub delivery (see the module docs).
#[derive(Debug)]
pub struct PubSubHub {
    node: u64,
    incarnation: u64,
    clients: Mutex<HashMap<u64, mpsc::UnboundedSender<Frame>>>,
    gone: Mutex<Vec<u64>>,
    gone_wake: Notify,
}

impl PubSubHub {
    /// A hub for node `node` running as `incarnation`.
    pub fn new(node: u64, incarnation: u64) -> PubSubHub {
        PubSubHub {
            node,
            incarnation,
            clients: Mutex::new(HashMap::new()),
            gone: Mutex::new(Vec::new()),
            gone_wake: Notify::new(),
        }
    }

    /// A fresh incarnation number for a starting process: the wall clock in
    /// nanoseconds mixed with the process id (distinct across restarts).
    pub fn new_incarnation() -> u64 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        nanos ^ (u64::from(std::process::id()) << 48)
    }

    /// This node id and incarnation (what apply queues frames for).
    pub fn local(&self) -> (u64, u64) {
        (self.node, self.incarnation)
    }

    /// The cluster-wide identity of local client `client`.
    pub fn subscriber(&self, client: u64) -> Subscriber {
        Subscriber {
            node: self.node,
            incarnation: self.incarnation,
            client,
        }
    }

    /// Registers `client` for frames; a second call replaces the first's
    /// receiver.
    pub fn register(&self, client: u64) -> mpsc::UnboundedReceiver<Frame> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(client, tx);
        rx
    }

    /// `client` left: no more frames, and its subscriptions are dropped
    /// from the registry by [`cleanup`].
    pub fn deregister(&self, client: u64) {
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&client);
        self.gone
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(client);
        self.gone_wake.notify_one();
    }

    /// Hands applied frames to their connections, in order. Frames for a
    /// client that has left are dropped.
    pub fn deliver(&self, frames: Vec<(u64, Frame)>) {
        if frames.is_empty() {
            return;
        }
        let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        for (client, frame) in frames {
            if let Some(tx) = clients.get(&client) {
                let _ = tx.send(frame);
            }
        }
    }

    /// Connections registered here.
    pub fn registered(&self) -> usize {
        self.clients.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn take_gone(&self) -> Vec<Subscriber> {
        let gone = std::mem::take(&mut *self.gone.lock().unwrap_or_else(|e| e.into_inner()));
        gone.into_iter().map(|c| self.subscriber(c)).collect()
    }
}

/// Pause between attempts when the cluster does not take a clean-up entry.
const RETRY: Duration = Duration::from_millis(200);

/// Proposes the clean-up entries this node owes: `DropNode` for its
/// earlier incarnations once, then `DropClients` for connections as they
/// leave. Retries each until it is applied; ends at shutdown.
pub(crate) async fn cleanup(handle: super::NodeHandle, mut shutdown: watch::Receiver<bool>) {
    let hub = handle.pubsub().clone();
    let (node, incarnation) = hub.local();
    let mut owed = vec![PubSubOp::DropNode { node, incarnation }];
    loop {
        while let Some(op) = owed.first().cloned() {
            match handle.write(crate::kv::Op::PubSub(op)).await {
                Ok(_) => {
                    owed.remove(0);
                }
                Err(_) => {
                    tokio::select! {
                        () = tokio::time::sleep(RETRY) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
            if *shutdown.borrow() {
                return;
            }
        }
        tokio::select! {
            () = hub.gone_wake.notified() => {}
            _ = shutdown.changed() => return,
        }
        let who = hub.take_gone();
        if !who.is_empty() {
            owed.push(PubSubOp::DropClients { who });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn frames_reach_registered_clients_only_in_order() {
        let hub = PubSubHub::new(1, 2);
        let mut rx = hub.register(5);
        let frame = |m: &'static [u8]| Frame::Message {
            channel: Bytes::from_static(b"c"),
            message: Bytes::from_static(m),
            shard: false,
        };
        hub.deliver(vec![(5, frame(b"1")), (6, frame(b"x")), (5, frame(b"2"))]);
        assert_eq!(rx.try_recv().unwrap(), frame(b"1"));
        assert_eq!(rx.try_recv().unwrap(), frame(b"2"));
        assert!(rx.try_recv().is_err());
        hub.deregister(5);
        hub.deliver(vec![(5, frame(b"3"))]);
        assert!(rx.try_recv().is_err());
        assert_eq!(hub.registered(), 0);
        assert_eq!(hub.take_gone(), vec![hub.subscriber(5)]);
    }
}
