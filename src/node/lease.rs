//! The leader lease as the client path sees it: reads served from the local
//! map, without a trip through the driver, while the lease holds.
//!
//! With `raft.lease_reads` the core answers a read at once while a majority
//! acknowledged a heartbeat round that started less than
//! `election_timeout_min_ticks - clock_drift_bound_ticks` ticks ago
//! (`raft/read_index.rs`). Handing each read to the driver for that answer
//! costs two task wake-ups and a channel round per read, more than the read
//! itself. Instead the driver turns the core's remaining lease into a
//! deadline on the monotonic clock and publishes it here; a reader that finds
//! the deadline ahead of `Instant::now()` reads the map directly.
//!
//! # Why a direct read is linearizable
//!
//! - The deadline is granted only on the leader, and only once it has applied
//!   an entry of its own term, so the map holds every write acknowledged in an
//!   earlier term; writes this leader acknowledges are applied before their
//!   reply (driver, step 3).
//! - It is an absolute instant: a driver that stalls (a slow fsync, a paused
//!   process) cannot stretch it, and the driver counts ticks by the same
//!   clock (`Driver::catch_up_ticks`), so it never runs past the core's lease.
//! - The driver revokes it (`revoke`) before a leadership transfer's
//!   TimeoutNow can leave the node (the one way a new leader can be elected
//!   inside a lease), and republishes it after every batch of events, so a
//!   lost leadership never leaves a grant behind beyond its deadline.
//!
//! A read that checked the gate and then reads the map a little later still
//! linearizes at the check: no other leader can have committed anything
//! before the deadline, and the map only gains this leader's committed
//! entries meanwhile.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A lease deadline shared by the driver (writer) and readers.
#[derive(Debug)]
pub(crate) struct LeaseGate {
    /// The origin of `until_nanos`.
    base: Instant,
    /// Nanoseconds after `base` at which the lease ends; 0: no lease.
    until_nanos: AtomicU64,
}

impl LeaseGate {
    pub(crate) fn new() -> LeaseGate {
        LeaseGate {
            base: Instant::now(),
            until_nanos: AtomicU64::new(0),
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Direct reads are allowed until `until`.
    pub(crate) fn grant(&self, until: Instant) {
        self.until_nanos
            .store(self.nanos(until).max(1), Ordering::Release);
    }

    /// No direct reads from now on (until the next grant).
    pub(crate) fn revoke(&self) {
        self.until_nanos.store(0, Ordering::Release);
    }

    /// True while a granted lease has not reached its deadline.
    pub(crate) fn holds(&self) -> bool {
        let until = self.until_nanos.load(Ordering::Acquire);
        until != 0 && self.nanos(Instant::now()) < until
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn holds_until_its_deadline_and_not_after_a_revoke() {
        let gate = LeaseGate::new();
        assert!(!gate.holds(), "a new gate grants nothing");
        gate.grant(Instant::now() + Duration::from_secs(60));
        assert!(gate.holds());
        gate.revoke();
        assert!(!gate.holds());
        gate.grant(Instant::now() - Duration::from_millis(1));
        assert!(!gate.holds(), "a deadline in the past grants nothing");
        let before_base = gate.base.checked_sub(Duration::from_secs(1));
        if let Some(at) = before_base {
            gate.grant(at);
            assert!(!gate.holds(), "a deadline before the origin grants nothing");
        }
    }
}
