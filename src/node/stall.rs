//! Noticing a driver that falls behind.
//!
//! Every timer of the Raft core (election timeout, check-quorum, heartbeats,
//! the lease) counts ticks of the driver's clock, and a peer's message counts
//! only once the driver steps it. A driver turn that runs long, or a driver
//! task that the runtime does not schedule for a while (CPU starvation, a
//! worker thread blocked by another task), looks to the core like silence:
//! a leader that comes back from one stall longer than the minimum election
//! timeout has heard from nobody and steps down (check-quorum), a follower
//! starts an election. etcd warns in the same place ("leader failed to send
//! out heartbeat on time").
//!
//! [`StallLog`] is told how long each turn took and how late the driver was
//! for its clock; past a threshold (a third of the minimum election timeout)
//! it counts the stall in `dkv_driver_stalls_total` and logs it, at most one
//! line per interval with the number left out and the worst since.

use std::time::{Duration, Instant};

/// Counts and logs (rate-limited) the driver's stalls.
pub(super) struct StallLog {
    threshold: Duration,
    interval: Duration,
    last_line: Option<Instant>,
    suppressed: u64,
    worst_suppressed: Duration,
    turns: metrics::Counter,
    late: metrics::Counter,
}

/// Where one turn of the driver spent its time, for the stall's log line.
#[derive(Debug, Default)]
pub(super) struct TurnCosts {
    /// Waiting for the map's write lock (readers hold it).
    pub lock_wait: Duration,
    /// Applying entries, and how many.
    pub apply: Duration,
    pub entries: usize,
    /// The slowest entry's apply, and what it was (only recorded past a
    /// millisecond).
    pub slowest: Option<(Duration, String)>,
    /// Copying the map for a snapshot.
    pub snapshot_copy: Duration,
}

impl TurnCosts {
    /// Remembers an entry's apply time; `what` is only called when it is
    /// the slowest so far and took over a millisecond.
    pub(super) fn entry(&mut self, took: Duration, what: impl FnOnce() -> String) {
        self.entries += 1;
        self.apply += took;
        let slower = self.slowest.as_ref().is_none_or(|(worst, _)| took > *worst);
        if slower && took >= Duration::from_millis(1) {
            self.slowest = Some((took, what()));
        }
    }
}

/// What was slow.
#[derive(Clone, Copy, Debug)]
pub(super) enum Stall<'a> {
    /// One turn of the driver loop (the kind of input it handled) took long.
    Turn(&'static str, &'a TurnCosts),
    /// The driver came to its clock this late: it was not scheduled, or a
    /// turn before held it.
    Late,
}

impl StallLog {
    /// Stalls of at least `threshold` count; one line per `interval`.
    pub(super) fn new(threshold: Duration, interval: Duration) -> StallLog {
        StallLog {
            threshold,
            interval,
            last_line: None,
            suppressed: 0,
            worst_suppressed: Duration::ZERO,
            turns: crate::metrics::Metrics::driver_stalls("turn"),
            late: crate::metrics::Metrics::driver_stalls("late"),
        }
    }

    /// Records `what` lasting `took`, seen `now`; returns whether it counted
    /// as a stall (whether or not a line was written).
    pub(super) fn observe(&mut self, now: Instant, what: Stall<'_>, took: Duration) -> bool {
        if took < self.threshold {
            return false;
        }
        match what {
            Stall::Turn(..) => self.turns.increment(1),
            Stall::Late => self.late.increment(1),
        }
        let due = self
            .last_line
            .is_none_or(|last| now.saturating_duration_since(last) >= self.interval);
        if !due {
            self.suppressed += 1;
            self.worst_suppressed = self.worst_suppressed.max(took);
            return true;
        }
        let (kind, input, costs) = match what {
            Stall::Turn(input, costs) => ("turn", input, Some(costs)),
            Stall::Late => ("late for its clock", "-", None),
        };
        let ms = |d: Duration| d.as_micros() as f64 / 1000.0;
        tracing::warn!(
            kind,
            input,
            lock_wait_ms = costs.map(|c| ms(c.lock_wait)),
            apply_ms = costs.map(|c| ms(c.apply)),
            entries = costs.map(|c| c.entries),
            slowest_entry_ms = costs.and_then(|c| c.slowest.as_ref()).map(|(d, _)| ms(*d)),
            slowest_entry = costs
                .and_then(|c| c.slowest.as_ref())
                .map(|(_, what)| what.as_str()),
            snapshot_copy_ms = costs.map(|c| ms(c.snapshot_copy)),
            took_ms = took.as_millis() as u64,
            stalls_since_last_line = self.suppressed,
            worst_since_last_line_ms = self.worst_suppressed.as_millis() as u64,
            "the driver stalled: Raft's timers count this as silence from every peer"
        );
        self.last_line = Some(now);
        self.suppressed = 0;
        self.worst_suppressed = Duration::ZERO;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turn_remembers_its_slowest_entry() {
        let mut costs = TurnCosts::default();
        costs.entry(Duration::from_micros(200), || {
            unreachable!("under a millisecond")
        });
        costs.entry(Duration::from_millis(3), || "LPUSH".to_string());
        costs.entry(Duration::from_millis(2), || unreachable!("not the slowest"));
        assert_eq!(costs.entries, 3);
        assert_eq!(costs.apply, Duration::from_micros(5200));
        assert_eq!(
            costs.slowest,
            Some((Duration::from_millis(3), "LPUSH".to_string()))
        );
    }

    #[test]
    fn stalls_below_the_threshold_do_not_count() {
        let mut log = StallLog::new(Duration::from_millis(100), Duration::from_secs(10));
        let now = Instant::now();
        assert!(!log.observe(now, Stall::Late, Duration::from_millis(99)));
        assert!(log.observe(now, Stall::Late, Duration::from_millis(100)));
        assert!(log.observe(
            now,
            Stall::Turn("inbound", &TurnCosts::default()),
            Duration::from_millis(400)
        ));
    }

    #[test]
    fn lines_are_rate_limited_and_report_what_they_left_out() {
        let mut log = StallLog::new(Duration::from_millis(10), Duration::from_secs(10));
        let start = Instant::now();
        assert!(log.observe(start, Stall::Late, Duration::from_millis(20)));
        assert_eq!(log.last_line, Some(start));
        let later = start + Duration::from_secs(1);
        assert!(log.observe(
            later,
            Stall::Turn("ready", &TurnCosts::default()),
            Duration::from_millis(50)
        ));
        assert!(log.observe(later, Stall::Late, Duration::from_millis(30)));
        assert_eq!(log.suppressed, 2);
        assert_eq!(log.worst_suppressed, Duration::from_millis(50));
        assert_eq!(
            log.last_line,
            Some(start),
            "no second line within the interval"
        );
        let next = start + Duration::from_secs(10);
        assert!(log.observe(next, Stall::Late, Duration::from_millis(10)));
        assert_eq!(log.last_line, Some(next));
        assert_eq!(log.suppressed, 0);
        assert_eq!(log.worst_suppressed, Duration::ZERO);
    }
}
