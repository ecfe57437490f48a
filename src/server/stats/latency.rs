//! The latency monitor (`LATENCY`): for each event class, the last
//! [`SAMPLES`] seconds in which it took at least `latency-monitor-threshold`
//! milliseconds (one sample per second: the worst), and its all-time worst.
//!
//! The classes dkv records are Redis's `command` (a non-fast command) and
//! `fast-command` (a command flagged fast), with the request's duration as
//! [`super`] defines it. A threshold of 0 (the default) turns the monitor
//! off, as in Redis. Memory is bounded: a fixed number of classes, each a
//! ring of [`SAMPLES`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::slowlog::unix_secs;

/// Samples kept per event (Redis's `LATENCY_TS_LEN`).
pub const SAMPLES: usize = 160;

/// One event class's history.
#[derive(Clone, Debug, Default)]
pub struct Series {
    /// `(unix seconds, milliseconds)`, oldest first.
    pub samples: std::collections::VecDeque<(i64, u64)>,
    /// The worst latency ever recorded, in milliseconds.
    pub max_ms: u64,
}

/// The latency monitor.
#[derive(Debug, Default)]
pub struct LatencyMonitor {
    threshold_ms: AtomicU64,
    events: Mutex<BTreeMap<&'static str, Series>>,
}

impl LatencyMonitor {
    /// `latency-monitor-threshold` in ms (0: off).
    pub fn threshold_ms(&self) -> u64 {
        self.threshold_ms.load(Ordering::Relaxed)
    }

    /// Sets `latency-monitor-threshold`.
    pub fn set_threshold_ms(&self, ms: u64) {
        self.threshold_ms.store(ms, Ordering::Relaxed);
    }

    /// Records `ms` for `event` if the monitor is on and `ms` reaches the
    /// threshold.
    pub fn offer(&self, event: &'static str, ms: u64) {
        let threshold = self.threshold_ms();
        if threshold == 0 || ms < threshold {
            return;
        }
        self.add(event, unix_secs(), ms);
    }

    /// Adds a sample at `now` (the worst of a second is kept).
    pub(crate) fn add(&self, event: &'static str, now: i64, ms: u64) {
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let series = events.entry(event).or_default();
        series.max_ms = series.max_ms.max(ms);
        match series.samples.back_mut() {
            Some((at, worst)) if *at == now => *worst = (*worst).max(ms),
            _ => {
                series.samples.push_back((now, ms));
                if series.samples.len() > SAMPLES {
                    series.samples.pop_front();
                }
            }
        }
    }

    /// Every event with its latest sample and worst: `LATENCY LATEST`.
    pub fn latest(&self) -> Vec<(&'static str, i64, u64, u64)> {
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        events
            .iter()
            .filter_map(|(name, series)| {
                let (at, ms) = *series.samples.back()?;
                Some((*name, at, ms, series.max_ms))
            })
            .collect()
    }

    /// One event's history (None: no such event).
    pub fn series(&self, event: &[u8]) -> Option<(&'static str, Series)> {
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        events
            .iter()
            .find(|(name, _)| name.as_bytes() == event)
            .map(|(name, series)| (*name, series.clone()))
    }

    /// Forgets the named events (all with an empty list); returns how many
    /// were forgotten.
    pub fn reset(&self, names: &[&[u8]]) -> usize {
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        if names.is_empty() {
            let n = events.len();
            events.clear();
            return n;
        }
        let before = events.len();
        events.retain(|name, _| !names.contains(&name.as_bytes()));
        before - events.len()
    }

    /// Every event's history (LATENCY DOCTOR).
    pub fn all(&self) -> Vec<(&'static str, Series)> {
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        events.iter().map(|(n, s)| (*n, s.clone())).collect()
    }
}

/// `LATENCY GRAPH event`: Redis's sparkline of the history, 4 rows high,
/// each column labelled with how long ago its sample was taken.
pub fn graph(event: &str, series: &Series, now: i64) -> String {
    const COLUMNS: usize = 80;
    const ROWS: usize = 4;
    const FILL: &[u8] = b"_o#";
    let values: Vec<u64> = series.samples.iter().map(|s| s.1).collect();
    let labels: Vec<String> = series
        .samples
        .iter()
        .map(|(at, _)| {
            let elapsed = now.saturating_sub(*at).max(0);
            match elapsed {
                e if e < 60 => format!("{e}s"),
                e if e < 3600 => format!("{}m", e / 60),
                e if e < 86_400 => format!("{}h", e / 3600),
                e => format!("{}d", e / 86_400),
            }
        })
        .collect();
    let min = values.iter().copied().min().unwrap_or(0);
    let max = values.iter().copied().max().unwrap_or(0);
    let mut out = format!(
        "{event} - high {max} ms, low {min} ms (all time high {} ms)\n{}\n",
        series.max_ms,
        "-".repeat(COLUMNS)
    );
    let range = if max == min { 1.0 } else { (max - min) as f64 };
    let steps = FILL.len() * ROWS;
    for (chunk, (values, labels)) in values
        .chunks(COLUMNS)
        .zip(labels.chunks(COLUMNS))
        .enumerate()
    {
        if chunk > 0 {
            out.push('\n');
        }
        for row in 0..ROWS {
            let line: String = values
                .iter()
                .map(|&v| {
                    let step = (((v - min) as f64 * steps as f64) / range) as usize;
                    let step = step.min(steps - 1);
                    let index = step as i64 - ((ROWS - row - 1) * FILL.len()) as i64;
                    if index >= FILL.len() as i64 {
                        '|'
                    } else if index >= 0 {
                        FILL[index as usize] as char
                    } else {
                        ' '
                    }
                })
                .collect();
            out.push_str(&line);
            out.push('\n');
        }
        // A blank line, then the labels written downwards.
        out.push_str(&" ".repeat(values.len()));
        out.push('\n');
        let tallest = labels.iter().map(String::len).max().unwrap_or(0);
        for at in 0..tallest {
            let line: String = labels
                .iter()
                .map(|l| l.as_bytes().get(at).map_or(' ', |&b| b as char))
                .collect();
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// `LATENCY DOCTOR`'s report, in Redis's words for the events dkv records.
pub fn doctor(monitor: &LatencyMonitor, slowlog_slower_than_usec: i64, now: i64) -> String {
    let events = monitor.all();
    let threshold = monitor.threshold_ms();
    if events.is_empty() && threshold == 0 {
        return "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n".to_string();
    }
    let mut report = String::new();
    let (mut slowlog_enable, mut slowlog_tune, mut inspect, mut scheduler) =
        (false, false, false, false);
    for (n, (event, series)) in events.iter().enumerate() {
        if n == 0 {
            report.push_str("Dave, I have observed latency spikes in this Redis instance. You don't mind talking about it, do you Dave?\n\n");
        }
        let samples = series.samples.len().max(1) as u64;
        let sum: u64 = series.samples.iter().map(|s| s.1).sum();
        let avg = sum / samples;
        let mad = series
            .samples
            .iter()
            .map(|s| s.1.abs_diff(avg))
            .sum::<u64>()
            / samples;
        let oldest = series.samples.iter().map(|s| s.0).min().unwrap_or(now);
        let period = (now - oldest).max(1) as f64;
        report.push_str(&format!(
            "{}. {event}: {} latency spikes (average {avg}ms, mean deviation {mad}ms, period {:.2} sec). Worst all time event {}ms.",
            n + 1,
            series.samples.len(),
            period / samples as f64,
            series.max_ms
        ));
        if *event == "command" {
            if slowlog_slower_than_usec < 0 {
                slowlog_enable = true;
            } else if slowlog_slower_than_usec / 1000 > threshold as i64 {
                slowlog_tune = true;
            }
            inspect = true;
        }
        if *event == "fast-command" {
            scheduler = true;
        }
        report.push('\n');
    }
    let advices = slowlog_enable || slowlog_tune || inspect || scheduler;
    if events.is_empty() {
        report.push_str("Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. I honestly think you ought to sit down calmly, take a stress pill, and think things over.\n");
    } else if !advices {
        report.push_str("\nWhile there are latency events logged, I'm not able to suggest any easy fix. Please use the Redis community to get some help, providing this report in your help request.\n");
    } else {
        report.push_str("\nI have a few advices for you:\n\n");
        let usec = threshold * 1000;
        if slowlog_enable {
            report.push_str(&format!("- There are latency issues with potentially slow commands you are using. Try to enable the Slow Log Redis feature using the command 'CONFIG SET slowlog-log-slower-than {usec}'. If the Slow log is disabled Redis is not able to log slow commands execution for you.\n"));
        }
        if slowlog_tune {
            report.push_str(&format!("- Your current Slow Log configuration only logs events that are slower than your configured latency monitor threshold. Please use 'CONFIG SET slowlog-log-slower-than {usec}'.\n"));
        }
        if inspect {
            report.push_str("- Check your Slow Log to understand what are the commands you are running which are too slow to execute. Please check https://redis.io/commands/slowlog for more information.\n");
        }
        if scheduler {
            report.push_str("- The system is slow to execute Redis code paths not containing system calls. This usually means the system does not provide Redis CPU time to run for long periods. You should try to:\n  1) Lower the system load.\n  2) Use a computer / VM just for Redis if you are running other software in the same system.\n  3) Check if you have a \"noisy neighbour\" problem.\n  4) Check with 'redis-cli --intrinsic-latency 100' what is the intrinsic latency in your system.\n");
        }
        if inspect {
            report.push_str("- In dkv a command's latency includes its Raft round (the quorum's WAL fsyncs and the network): check INFO raft and the wal_fsync_duration_seconds histogram on /metrics.\n");
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_keep_the_worst_per_second_and_are_bounded() {
        let m = LatencyMonitor::default();
        m.offer("command", 500);
        assert!(m.latest().is_empty(), "off by default");
        m.set_threshold_ms(10);
        m.offer("command", 9);
        assert!(m.latest().is_empty(), "below the threshold");
        m.add("command", 100, 20);
        m.add("command", 100, 15);
        m.add("command", 101, 12);
        assert_eq!(m.latest(), vec![("command", 101, 12, 20)]);
        let (_, series) = m.series(b"command").expect("recorded");
        assert_eq!(
            series.samples.iter().copied().collect::<Vec<_>>(),
            vec![(100, 20), (101, 12)]
        );
        for at in 0..1000 {
            m.add("fast-command", 1000 + at, 11);
        }
        let (_, series) = m.series(b"fast-command").expect("recorded");
        assert_eq!(series.samples.len(), SAMPLES);
        assert_eq!(m.reset(&[b"command", b"nosuch"]), 1);
        assert_eq!(m.reset(&[]), 1);
        assert!(m.latest().is_empty());
    }

    #[test]
    fn graph_and_doctor_describe_the_events() {
        let m = LatencyMonitor::default();
        assert!(doctor(&m, 10_000, 0).starts_with("I'm sorry, Dave"));
        m.set_threshold_ms(1);
        assert!(doctor(&m, 10_000, 0).contains("no latency spike"));
        m.add("command", 100, 5);
        m.add("command", 101, 50);
        let (name, series) = m.series(b"command").expect("recorded");
        let text = graph(name, &series, 102);
        assert!(
            text.starts_with("command - high 50 ms, low 5 ms (all time high 50 ms)\n"),
            "{text}"
        );
        assert!(text.contains("_#") || text.contains("_|"), "{text}");
        let report = doctor(&m, 20_000, 102);
        assert!(report.contains("1. command: 2 latency spikes"), "{report}");
        assert!(report.contains("slowlog-log-slower-than 1000"), "{report}");
    }
}
