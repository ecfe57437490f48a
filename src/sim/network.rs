//! The simulated network: every message gets a delivery tick drawn from the
//! seeded RNG (so messages reorder), may be dropped or duplicated, and is
//! dropped if its link is cut when it is sent or when it arrives.
//!
//! Partitions are a set of cut directed links; the shapes the simulator uses
//! (random, majority/minority, a bridge node, an isolated node) are built
//! here, and scripted schedules cut single directed links. Nothing here reads
//! a clock: time is the tick passed in.
//!
//! An InstallSnapshot travels with the sender's snapshot bytes: the real
//! transport streams them before delivering the message (ARCHITECTURE.md),
//! so a delivered InstallSnapshot always arrives with its data.

use bytes::Bytes;
use rand::rngs::ChaCha8Rng;
use rand::RngExt;

use crate::raft::{Envelope, NodeId};

/// How lossy the network is (fixed per run, drawn from the seed).
#[derive(Clone, Copy, Debug)]
pub struct NetProfile {
    /// Per-mille chance a message is dropped.
    pub drop_per_mille: u32,
    /// Per-mille chance a message is delivered twice.
    pub duplicate_per_mille: u32,
    /// Largest delivery delay in ticks (at least 1).
    pub max_delay_ticks: u64,
    /// Messages due in the same tick arrive in random order (else in the
    /// order they were sent).
    pub reorder: bool,
}

impl NetProfile {
    /// A random profile: up to 10% loss, 5% duplication, 1–4 ticks of delay.
    pub fn random(rng: &mut ChaCha8Rng) -> NetProfile {
        NetProfile {
            drop_per_mille: rng.random_range(0..100),
            duplicate_per_mille: rng.random_range(0..50),
            max_delay_ticks: rng.random_range(1..5),
            reorder: true,
        }
    }

    /// No loss, no duplication, every message delivered the next tick in
    /// the order sent (for scripted schedules).
    pub fn lossless() -> NetProfile {
        NetProfile {
            drop_per_mille: 0,
            duplicate_per_mille: 0,
            max_delay_ticks: 1,
            reorder: false,
        }
    }
}

/// A message on its way, with the snapshot bytes of an InstallSnapshot.
struct InFlight {
    deliver_at: u64,
    envelope: Envelope,
    snapshot_data: Option<Bytes>,
}

/// The network between `n` nodes (ids 1..=n).
pub struct Network {
    n: usize,
    /// `cut[from][to]`: the directed link drops everything (ids are 1-based).
    cut: Vec<Vec<bool>>,
    in_flight: Vec<InFlight>,
    /// The current loss profile.
    pub profile: NetProfile,
    /// Messages accepted for delivery (a trace statistic).
    pub sent_total: u64,
    /// The per-message random stream (see [`SplitMix64`]).
    rng: SplitMix64,
}

/// SplitMix64 (Steele, Lea & Flood 2014): the per-message random stream,
/// seeded from the run's ChaCha8Rng. ChaCha costs ~10% of a debug-build run
/// when drawn per message; this is a multiply and two xor-shifts, and being
/// written out here its sequence can never change under us.
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A stream starting from `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Network {
    /// A fully connected network of `n` nodes; `seed` starts its
    /// per-message random stream.
    pub fn new(n: usize, profile: NetProfile, seed: u64) -> Network {
        Network {
            rng: SplitMix64::new(seed),
            n,
            cut: vec![vec![false; n + 1]; n + 1],
            in_flight: Vec::new(),
            profile,
            sent_total: 0,
        }
    }

    /// True when messages from `from` to `to` are dropped.
    pub fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.cut[from.0 as usize][to.0 as usize]
    }

    /// Whether any link is cut.
    pub fn is_partitioned(&self) -> bool {
        self.cut.iter().any(|row| row.iter().any(|&c| c))
    }

    /// Queues `envelope` sent at tick `now` (with the snapshot bytes of an
    /// InstallSnapshot), applying loss and duplication.
    pub fn send(&mut self, now: u64, envelope: Envelope, snapshot_data: Option<Bytes>) {
        if self.is_cut(envelope.from, envelope.to) {
            return;
        }
        // One draw per message: bits 0-15 loss, 16-31 duplication, 32-47
        // delay, 48-63 the duplicate's delay.
        let bits = self.rng.next();
        let per_mille = |shift: u32| ((bits >> shift) & 0xffff) % 1000;
        if per_mille(0) < u64::from(self.profile.drop_per_mille) {
            return;
        }
        let delay = |shift: u32, max: u64| 1 + ((bits >> shift) & 0xffff) % max;
        if per_mille(16) < u64::from(self.profile.duplicate_per_mille) {
            self.in_flight.push(InFlight {
                deliver_at: now + delay(48, self.profile.max_delay_ticks + 2),
                envelope: envelope.clone(),
                snapshot_data: snapshot_data.clone(),
            });
        }
        self.sent_total += 1;
        self.in_flight.push(InFlight {
            deliver_at: now + delay(32, self.profile.max_delay_ticks),
            envelope,
            snapshot_data,
        });
    }

    /// Removes and returns the messages due at `now` whose link is intact
    /// (with their snapshot bytes), in a random order.
    pub fn take_due(&mut self, now: u64) -> Vec<(Envelope, Option<Bytes>)> {
        if !self.profile.reorder {
            let (due, later): (Vec<InFlight>, Vec<InFlight>) = std::mem::take(&mut self.in_flight)
                .into_iter()
                .partition(|m| m.deliver_at <= now);
            self.in_flight = later;
            return due
                .into_iter()
                .filter(|m| !self.is_cut(m.envelope.from, m.envelope.to))
                .map(|m| (m.envelope, m.snapshot_data))
                .collect();
        }
        let mut due = Vec::new();
        let mut i = 0;
        while i < self.in_flight.len() {
            if self.in_flight[i].deliver_at <= now {
                let message = self.in_flight.swap_remove(i);
                if !self.is_cut(message.envelope.from, message.envelope.to) {
                    due.push((message.envelope, message.snapshot_data));
                }
            } else {
                i += 1;
            }
        }
        // swap_remove already scrambles; shuffle for reordering among equals.
        if due.len() > 1 {
            let mut bits = self.rng.next();
            for i in (1..due.len()).rev() {
                let j = (bits % (i as u64 + 1)) as usize;
                bits = bits.rotate_right(7) ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                due.swap(i, j);
            }
        }
        due
    }

    /// Drops every message addressed to `id` (it crashed: its sockets closed).
    pub fn drop_to(&mut self, id: NodeId) {
        self.in_flight.retain(|m| m.envelope.to != id);
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        for row in &mut self.cut {
            row.fill(false);
        }
    }

    fn cut_both(&mut self, a: usize, b: usize) {
        self.cut[a][b] = true;
        self.cut[b][a] = true;
    }

    /// Cuts every link between the two sides of `side` (true / false).
    fn split(&mut self, side: &[bool]) {
        for a in 1..=self.n {
            for b in 1..=self.n {
                if side[a] != side[b] {
                    self.cut[a][b] = true;
                }
            }
        }
    }

    /// Cuts each directed link with probability 1/3 (asymmetric partitions).
    pub fn partition_random(&mut self, rng: &mut ChaCha8Rng) {
        self.heal();
        for a in 1..=self.n {
            for b in 1..=self.n {
                if a != b && rng.random_range(0..3) == 0 {
                    self.cut[a][b] = true;
                }
            }
        }
    }

    /// Splits the nodes into a random majority and minority.
    pub fn partition_majority(&mut self, rng: &mut ChaCha8Rng) {
        self.heal();
        let minority = rng.random_range(1..=(self.n - 1) / 2);
        let side = self.random_side(rng, minority);
        self.split(&side);
    }

    /// Two halves that only `bridge` connects: it talks to everyone, the
    /// others only to their own half.
    pub fn partition_bridge(&mut self, rng: &mut ChaCha8Rng) {
        self.heal();
        let bridge = rng.random_range(1..=self.n);
        let others: Vec<usize> = (1..=self.n).filter(|&i| i != bridge).collect();
        let half = others.len() / 2;
        for (i, &a) in others.iter().enumerate() {
            for &b in &others[i + 1..] {
                let same_side =
                    (others.iter().position(|&x| x == b).expect("member") < half) == (i < half);
                if !same_side {
                    self.cut_both(a, b);
                }
            }
        }
    }

    /// Cuts the directed link `from` → `to` (a scripted schedule's tool).
    pub fn cut_link(&mut self, from: NodeId, to: NodeId) {
        self.cut[from.0 as usize][to.0 as usize] = true;
    }

    /// Cuts every link but those between the given pairs (both directions).
    pub fn connect_only(&mut self, pairs: &[(u64, u64)]) {
        for row in &mut self.cut {
            row.fill(true);
        }
        for &(a, b) in pairs {
            self.cut[a as usize][b as usize] = false;
            self.cut[b as usize][a as usize] = false;
        }
    }

    /// Cuts `id` off from everyone.
    pub fn isolate(&mut self, id: NodeId) {
        self.heal();
        for other in 1..=self.n {
            if other != id.0 as usize {
                self.cut_both(id.0 as usize, other);
            }
        }
    }

    /// `count` random nodes marked true (1-based, index 0 unused).
    fn random_side(&self, rng: &mut ChaCha8Rng, count: usize) -> Vec<bool> {
        let mut side = vec![false; self.n + 1];
        let mut chosen = 0;
        while chosen < count {
            let i = rng.random_range(1..=self.n);
            if !side[i] {
                side[i] = true;
                chosen += 1;
            }
        }
        side
    }

    /// Messages in flight (for the trace).
    pub fn in_flight_count(&self) -> usize {
        self.in_flight.len()
    }
}
