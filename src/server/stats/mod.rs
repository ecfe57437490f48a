//! What this node counts about the commands it serves, as Redis counts it:
//! INFO `commandstats`, `errorstats`, `latencystats` and the `stats`
//! counters, the slow log ([`slowlog`]), the latency monitor ([`latency`])
//! and the MONITOR feed ([`super::monitor`]).
//!
//! Every figure here is this node's own (a Redis server's figures are its
//! own too): nothing is replicated, nothing survives a restart, and
//! `CONFIG RESETSTAT` zeroes it. The hot path — one finished request —
//! costs a few relaxed atomic adds on its command's slot and one on its
//! histogram bucket; a lock is taken only for an error reply (errorstats),
//! a request slower than `slowlog-log-slower-than` or
//! `latency-monitor-threshold`, and when a MONITOR client is attached.
//!
//! A request's duration (`usec`) is measured from when the connection
//! prepared it to when its reply was ready: for a write that includes the
//! Raft round (proposal, quorum fsync, apply), for a read its read barrier.
//! That is what the client waits for on this node, where Redis measures only
//! the command's execution; pipelined requests carried out as one group
//! each count from their own preparation to the group's completion.

pub mod histogram;
pub mod latency;
pub mod slowlog;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use bytes::Bytes;

use self::histogram::Histogram;
use crate::cmd::{CommandSpec, Flags, COMMANDS};
use crate::server::command::Session;
use crate::server::reply::Reply;

/// Most distinct error codes errorstats keeps (a client chooses the text of
/// some errors, e.g. a script's `redis.error_reply`); later new codes count
/// only in `total_error_replies`.
pub const MAX_ERROR_CODES: usize = 128;

/// The percentiles `latencystats` shows (Redis's default
/// `latency-tracking-info-percentiles "50 99 99.9"`).
pub const PERCENTILES: [f64; 3] = [50.0, 99.0, 99.9];

/// One command's (or subcommand's) counters.
#[derive(Debug)]
struct Slot {
    /// Redis's full name: `get`, `config|get`.
    name: &'static str,
    calls: AtomicU64,
    usec: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    /// Made on first use: most of the table is never called.
    histogram: OnceLock<Histogram>,
}

impl Slot {
    fn new(name: &'static str) -> Slot {
        Slot {
            name,
            calls: AtomicU64::new(0),
            usec: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            histogram: OnceLock::new(),
        }
    }
}

/// One command's figures, as INFO commandstats shows them.
#[derive(Clone, Debug, PartialEq)]
pub struct CommandFigures {
    /// Full name (`config|get`).
    pub name: &'static str,
    /// Executed calls (failed ones included, rejected ones not).
    pub calls: u64,
    /// Microseconds spent in them.
    pub usec: u64,
    /// Refused before running (arity, unknown subcommand, NOAUTH, NOPERM).
    pub rejected: u64,
    /// Ran and answered an error.
    pub failed: u64,
}

/// How a finished request went.
pub struct Finished<'a> {
    /// Its row in [`COMMANDS`] (None: unknown command).
    pub command: Option<usize>,
    /// The request as received.
    pub args: &'a [Bytes],
    /// The reply sent.
    pub reply: &'a Reply,
    /// Refused before running.
    pub rejected: bool,
    /// Microseconds from its preparation to its reply.
    pub usec: u64,
    /// A later request of its own group pushes its slow-log entry out
    /// before anyone could read it ([`Stats::superseded_in_slow_log`]):
    /// the log counts it (its id) without building it.
    pub superseded: bool,
}

/// Whether `spec`'s requests may enter the slow log: Redis keeps AUTH and
/// HELLO (their passwords) out of it.
fn slow_loggable(spec: &CommandSpec) -> bool {
    !matches!(spec.name, "auth" | "hello")
}

/// A request being carried out: when it was prepared and its arguments
/// (kept for the slow log, which needs them only when it turns out slow).
pub struct Request {
    /// When the connection prepared it.
    pub started: Instant,
    /// Its arguments (moved here, not copied).
    pub args: Vec<Bytes>,
}

impl Request {
    /// A request prepared now.
    pub fn new(args: Vec<Bytes>) -> Request {
        Request {
            started: Instant::now(),
            args,
        }
    }

    /// Microseconds since it was prepared.
    pub fn elapsed_usec(&self) -> u64 {
        self.usec_until(Instant::now())
    }

    /// Microseconds from its preparation to `end`.
    pub fn usec_until(&self, end: Instant) -> u64 {
        u64::try_from(end.saturating_duration_since(self.started).as_micros()).unwrap_or(u64::MAX)
    }
}

/// The node's traffic counters (INFO stats).
#[derive(Debug, Default)]
pub struct Traffic {
    /// Bytes read from clients.
    pub net_input_bytes: AtomicU64,
    /// Bytes written to clients.
    pub net_output_bytes: AtomicU64,
    /// Connections accepted.
    pub connections_received: AtomicU64,
    /// Connections refused at `maxclients`.
    pub rejected_connections: AtomicU64,
}

/// Samples of the counters the `instantaneous_*` fields are rates of.
#[derive(Clone, Copy, Debug)]
struct Sample {
    at: Instant,
    commands: u64,
    input: u64,
    output: u64,
}

/// Most samples kept, and the spacing between them: rates are over the
/// last ~1.6 s, as Redis's 16 samples every 100 ms.
const RATE_SAMPLES: usize = 16;
const RATE_SAMPLE_MS: u128 = 100;

/// Per-node command statistics (see the module docs).
#[derive(Debug)]
pub struct Stats {
    slots: Box<[Slot]>,
    /// Index in `slots` of each [`COMMANDS`] row; its subcommands follow it.
    bases: Box<[usize]>,
    errors: Mutex<BTreeMap<String, u64>>,
    total_error_replies: AtomicU64,
    commands_processed: AtomicU64,
    /// Network and connection counters.
    pub traffic: Traffic,
    samples: Mutex<Vec<Sample>>,
    /// `SLOWLOG`.
    pub slowlog: slowlog::SlowLog,
    /// `LATENCY`.
    pub latency: latency::LatencyMonitor,
    /// MONITOR clients.
    pub monitors: super::monitor::Monitors,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats::new()
    }
}

impl Stats {
    /// Zeroed statistics for every command of [`COMMANDS`].
    pub fn new() -> Stats {
        let mut slots = Vec::new();
        let mut bases = Vec::with_capacity(COMMANDS.len());
        for spec in COMMANDS.iter() {
            bases.push(slots.len());
            slots.push(Slot::new(spec.name));
            slots.extend(spec.subcommands.iter().map(|sub| Slot::new(sub.full_name)));
        }
        Stats {
            slots: slots.into_boxed_slice(),
            bases: bases.into_boxed_slice(),
            errors: Mutex::new(BTreeMap::new()),
            total_error_replies: AtomicU64::new(0),
            commands_processed: AtomicU64::new(0),
            traffic: Traffic::default(),
            samples: Mutex::new(Vec::new()),
            slowlog: slowlog::SlowLog::default(),
            latency: latency::LatencyMonitor::default(),
            monitors: super::monitor::Monitors::default(),
        }
    }

    /// The slot of `spec` (row `index`) run with `args`: its subcommand's
    /// when `args[1]` names one.
    fn slot(&self, index: usize, args: &[Bytes]) -> Option<&Slot> {
        let spec: &CommandSpec = COMMANDS.get(index)?;
        let base = *self.bases.get(index)?;
        let sub = args.get(1).and_then(|name| {
            spec.subcommands
                .iter()
                .position(|s| name.eq_ignore_ascii_case(s.name.as_bytes()))
        });
        self.slots.get(base + sub.map_or(0, |s| s + 1))
    }

    /// Counts one finished request; slow ones go to the slow log and the
    /// latency monitor.
    pub fn record(&self, finished: &Finished<'_>, session: &Session) {
        self.commands_processed.fetch_add(1, Ordering::Relaxed);
        if let Reply::Error(text) = finished.reply {
            self.count_error(text);
        }
        let Some(index) = finished.command else {
            return;
        };
        let Some(slot) = self.slot(index, finished.args) else {
            return;
        };
        if finished.rejected {
            slot.rejected.fetch_add(1, Ordering::Relaxed);
            return;
        }
        slot.calls.fetch_add(1, Ordering::Relaxed);
        slot.usec.fetch_add(finished.usec, Ordering::Relaxed);
        if finished.reply.is_error() {
            slot.failed.fetch_add(1, Ordering::Relaxed);
        }
        slot.histogram
            .get_or_init(Histogram::default)
            .record(finished.usec);
        let spec = COMMANDS[index];
        if slow_loggable(spec) {
            if finished.superseded {
                self.slowlog.pass_over(finished.usec);
            } else {
                self.slowlog.offer(finished.args, finished.usec, session);
            }
        }
        let event = if spec.flags.contains(Flags::FAST) {
            "fast-command"
        } else {
            "command"
        };
        self.latency.offer(event, finished.usec / 1000);
    }

    /// How many of a group's requests, answered in order, would have slow-log
    /// entries that later requests of the same group push out at once: the
    /// first that many of them to be logged need not be built. Each request
    /// is `(command, args, usec)`, counted as [`Stats::record`] counts a
    /// request that was not rejected. Zero unless the group has more
    /// requests than `slowlog-max-len`.
    ///
    /// A deep pipeline whose writes each wait for their Raft round (`redis-cli
    /// --pipe`, groups of up to 4096) can cross the threshold with every
    /// request; building, cutting and dropping an entry per request was a
    /// fifth of the connection's CPU in that load. Other connections' entries
    /// only push these out sooner, so what `SLOWLOG GET` can show is the
    /// same.
    pub fn superseded_in_slow_log<'a>(
        &self,
        group: impl ExactSizeIterator<Item = (Option<usize>, &'a [Bytes], u64)>,
    ) -> usize {
        let max_len = self.slowlog.max_len();
        if group.len() <= max_len {
            return 0;
        }
        let logged = group
            .filter(|&(command, args, usec)| self.slow_logs(command, args, usec))
            .count();
        logged.saturating_sub(max_len)
    }

    /// Whether [`Stats::record`] gives the slow log a request of `command`
    /// with `args` that was not rejected and took `usec`.
    pub fn slow_logs(&self, command: Option<usize>, args: &[Bytes], usec: u64) -> bool {
        command.is_some_and(|index| {
            self.slot(index, args).is_some()
                && slow_loggable(COMMANDS[index])
                && self.slowlog.logs(usec)
        })
    }

    /// Counts an error reply under its code (the first word, as Redis).
    fn count_error(&self, text: &str) {
        self.total_error_replies.fetch_add(1, Ordering::Relaxed);
        let head = &text.as_bytes()[..text.len().min(32)];
        let code = match head.iter().position(|&b| b == b' ') {
            Some(end) if end > 0 => &text[..end],
            _ => "ERR",
        };
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = errors.get_mut(code) {
            *count += 1;
        } else if errors.len() < MAX_ERROR_CODES {
            errors.insert(code.to_string(), 1);
        }
    }

    /// Commands run since start or the last reset (`total_commands_processed`).
    pub fn commands_processed(&self) -> u64 {
        self.commands_processed.load(Ordering::Relaxed)
    }

    /// Error replies sent (`total_error_replies`).
    pub fn total_error_replies(&self) -> u64 {
        self.total_error_replies.load(Ordering::Relaxed)
    }

    /// Every command with at least one call, rejection or failure, in table
    /// order (subcommands after their container).
    pub fn commands(&self) -> Vec<CommandFigures> {
        self.slots
            .iter()
            .map(|slot| CommandFigures {
                name: slot.name,
                calls: slot.calls.load(Ordering::Relaxed),
                usec: slot.usec.load(Ordering::Relaxed),
                rejected: slot.rejected.load(Ordering::Relaxed),
                failed: slot.failed.load(Ordering::Relaxed),
            })
            .filter(|f| f.calls > 0 || f.rejected > 0 || f.failed > 0)
            .collect()
    }

    /// Error codes with their counts, sorted by code.
    pub fn errors(&self) -> Vec<(String, u64)> {
        let errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        errors.iter().map(|(code, n)| (code.clone(), *n)).collect()
    }

    /// Each command with a histogram, and the histogram.
    pub fn histograms(&self) -> impl Iterator<Item = (&'static str, &Histogram)> + '_ {
        self.slots
            .iter()
            .filter_map(|slot| Some((slot.name, slot.histogram.get()?)))
    }

    /// The histograms of the named commands (`LATENCY HISTOGRAM get config`):
    /// a command's own and its subcommands'; unknown names are skipped.
    pub fn histograms_of(&self, names: &[Bytes]) -> Vec<(&'static str, &Histogram)> {
        let mut out = Vec::new();
        for name in names {
            let Some((index, spec)) = crate::cmd::lookup(name) else {
                continue;
            };
            let base = self.bases[index];
            for slot in &self.slots[base..=base + spec.subcommands.len()] {
                if let Some(h) = slot.histogram.get() {
                    out.push((slot.name, h));
                }
            }
        }
        out
    }

    /// `CONFIG RESETSTAT`: zeroes the command, error and traffic counters
    /// and the histograms (the slow log and latency events stay, as in Redis).
    pub fn reset(&self) {
        for slot in self.slots.iter() {
            slot.calls.store(0, Ordering::Relaxed);
            slot.usec.store(0, Ordering::Relaxed);
            slot.rejected.store(0, Ordering::Relaxed);
            slot.failed.store(0, Ordering::Relaxed);
            if let Some(h) = slot.histogram.get() {
                h.reset();
            }
        }
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.total_error_replies.store(0, Ordering::Relaxed);
        self.commands_processed.store(0, Ordering::Relaxed);
        for counter in [
            &self.traffic.net_input_bytes,
            &self.traffic.net_output_bytes,
            &self.traffic.connections_received,
            &self.traffic.rejected_connections,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// `(ops/s, input kbps, output kbps)` over the last ~1.6 s of samples.
    /// Samples are taken when INFO asks (at most one per 100 ms), so the
    /// first answer covers the time since the previous INFO.
    pub fn rates(&self) -> (u64, f64, f64) {
        let now = Sample {
            at: Instant::now(),
            commands: self.commands_processed(),
            input: self.traffic.net_input_bytes.load(Ordering::Relaxed),
            output: self.traffic.net_output_bytes.load(Ordering::Relaxed),
        };
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let oldest = samples.first().copied();
        let due = samples
            .last()
            .is_none_or(|last| now.at.duration_since(last.at).as_millis() >= RATE_SAMPLE_MS);
        if due {
            samples.push(now);
            if samples.len() > RATE_SAMPLES {
                samples.remove(0);
            }
        }
        let Some(oldest) = oldest else {
            return (0, 0.0, 0.0);
        };
        let seconds = now.at.duration_since(oldest.at).as_secs_f64();
        if seconds <= 0.0 {
            return (0, 0.0, 0.0);
        }
        let per_second = |new: u64, old: u64| new.saturating_sub(old) as f64 / seconds;
        (
            per_second(now.commands, oldest.commands).round() as u64,
            per_second(now.input, oldest.input) / 1024.0,
            per_second(now.output, oldest.output) / 1024.0,
        )
    }
}

#[cfg(test)]
mod tests;
