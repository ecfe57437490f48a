//! The script calls running on this node, seen with the wall clock that
//! `kv` must not read: Redis's `BUSY` reply once one has run longer than
//! `busy-reply-threshold`, and `SCRIPT KILL` / `FUNCTION KILL`.
//!
//! `Db` holds this monitor as its [`Watch`] (`kv::script::watch`); each call
//! registers when it starts and leaves when it ends, and the budget hook
//! polls it every 10 000 Lua instructions. Connections ask [`ScriptMonitor::busy`]
//! before anything else (before taking the map's lock, which a running
//! script holds), so a node busy with a script answers `BUSY` at once.
//!
//! Several read-only calls may run at once (reads share the map's lock); a
//! call at apply holds the lock alone. Which calls may be killed is decided
//! in `kv` ([`CallInfo::killable`]: only a call whose outcome changes
//! nothing but its own reply); a kill asks every killable running call of
//! the family to stop.
//!
//! Decision for a call that may write (EVAL, EVALSHA, FCALL at apply): it
//! cannot be killed. It runs at apply on every replica; stopping it on one
//! node would leave that node's map different from the others'. SCRIPT KILL
//! answers `UNKILLABLE` (Redis's text when it has written, [`UNKILLABLE_AT_APPLY`]
//! before), and the call ends at its deterministic execution budget.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::kv::script_watch::{CallInfo, CallKind, Poll, Watch};

/// Redis's default `busy-reply-threshold` (alias `lua-time-limit`).
pub const DEFAULT_BUSY_REPLY_THRESHOLD_MS: u64 = 5000;

/// `BUSY` while an EVAL-family call has run past the threshold (Redis 7.0).
pub const BUSY_EVAL: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
/// `BUSY` while an FCALL has (Redis 7.0).
pub const BUSY_FUNCTION: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";
/// SCRIPT KILL / FUNCTION KILL with nothing running (Redis 7.0).
pub const NOTBUSY: &str = "NOTBUSY No scripts in execution right now.";
/// A kill of a call that already wrote (Redis 7.0).
pub const UNKILLABLE_WROTE: &str = "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.";
/// dkv: a kill of a call at apply that may write but has not yet.
pub const UNKILLABLE_AT_APPLY: &str = "UNKILLABLE The busy script runs at apply on every replica and may write, so it cannot be killed on one node; it stops at its execution budget.";

/// One running call.
#[derive(Debug)]
struct Running {
    token: u64,
    call: CallInfo,
    started: Instant,
    dirty: bool,
    kill: bool,
}

/// This node's running script calls (see the module docs).
#[derive(Debug)]
pub struct ScriptMonitor {
    threshold_ms: AtomicU64,
    next_token: AtomicU64,
    /// How many calls run: every command asks [`ScriptMonitor::busy`], and
    /// with none running it answers without taking the lock.
    count: AtomicUsize,
    running: Mutex<Vec<Running>>,
}

impl Default for ScriptMonitor {
    fn default() -> ScriptMonitor {
        ScriptMonitor::new(DEFAULT_BUSY_REPLY_THRESHOLD_MS)
    }
}

impl ScriptMonitor {
    /// A monitor with `busy-reply-threshold` `threshold_ms`.
    pub fn new(threshold_ms: u64) -> ScriptMonitor {
        ScriptMonitor {
            threshold_ms: AtomicU64::new(threshold_ms),
            next_token: AtomicU64::new(1),
            count: AtomicUsize::new(0),
            running: Mutex::new(Vec::new()),
        }
    }

    /// `busy-reply-threshold` in milliseconds (CONFIG GET).
    pub fn threshold_ms(&self) -> u64 {
        self.threshold_ms.load(Ordering::Relaxed)
    }

    /// Sets `busy-reply-threshold` (CONFIG SET; this node only, as Redis's
    /// CONFIG SET changes one server).
    pub fn set_threshold_ms(&self, ms: u64) {
        self.threshold_ms.store(ms, Ordering::Relaxed);
    }

    fn calls(&self) -> std::sync::MutexGuard<'_, Vec<Running>> {
        // Never held across a call into anything else; a poisoned lock only
        // means a panic elsewhere, and the list is still whole.
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Redis's `BUSY` text when a call has run longer than the threshold
    /// (the FUNCTION text if that call is an FCALL); `None` otherwise.
    pub fn busy(&self) -> Option<&'static str> {
        if self.count.load(Ordering::Acquire) == 0 {
            return None;
        }
        let threshold = std::time::Duration::from_millis(self.threshold_ms());
        let calls = self.calls();
        let late = calls.iter().find(|r| r.started.elapsed() >= threshold)?;
        Some(busy_text(late.call.kind))
    }

    /// `SCRIPT KILL` (`kind` Eval) or `FUNCTION KILL` (Function): asks
    /// every killable running call of that family to stop.
    ///
    /// # Errors
    /// Redis's error text: `NOTBUSY` with nothing running, `UNKILLABLE` for
    /// a call that may write, the other family's `BUSY` when only calls of
    /// the other family run.
    pub fn kill(&self, kind: CallKind) -> Result<(), &'static str> {
        let mut calls = self.calls();
        if calls.is_empty() {
            return Err(NOTBUSY);
        }
        if let Some(writer) = calls.iter().find(|r| !r.call.killable) {
            return Err(if writer.dirty {
                UNKILLABLE_WROTE
            } else {
                UNKILLABLE_AT_APPLY
            });
        }
        let mut killed = false;
        for call in calls.iter_mut().filter(|r| r.call.kind == kind) {
            call.kill = true;
            killed = true;
        }
        if killed {
            Ok(())
        } else {
            Err(busy_text(other(kind)))
        }
    }
}

fn busy_text(kind: CallKind) -> &'static str {
    match kind {
        CallKind::Eval => BUSY_EVAL,
        CallKind::Function => BUSY_FUNCTION,
    }
}

fn other(kind: CallKind) -> CallKind {
    match kind {
        CallKind::Eval => CallKind::Function,
        CallKind::Function => CallKind::Eval,
    }
}

impl Watch for ScriptMonitor {
    fn start(&self, call: CallInfo) -> u64 {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let mut calls = self.calls();
        calls.push(Running {
            token,
            call,
            started: Instant::now(),
            dirty: false,
            kill: false,
        });
        self.count.store(calls.len(), Ordering::Release);
        token
    }

    fn poll(&self, token: u64, dirty: bool) -> Poll {
        let mut calls = self.calls();
        match calls.iter_mut().find(|r| r.token == token) {
            Some(call) => {
                call.dirty |= dirty;
                if call.kill && call.call.killable {
                    Poll::Kill
                } else {
                    Poll::Continue
                }
            }
            None => Poll::Continue,
        }
    }

    fn end(&self, token: u64) {
        let mut calls = self.calls();
        calls.retain(|r| r.token != token);
        self.count.store(calls.len(), Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const READ: CallInfo = CallInfo {
        kind: CallKind::Eval,
        killable: true,
    };
    const WRITE: CallInfo = CallInfo {
        kind: CallKind::Eval,
        killable: false,
    };

    #[test]
    fn kill_with_nothing_running_is_notbusy() {
        let m = ScriptMonitor::default();
        assert_eq!(m.kill(CallKind::Eval), Err(NOTBUSY));
        assert_eq!(m.kill(CallKind::Function), Err(NOTBUSY));
        let t = m.start(READ);
        m.end(t);
        assert_eq!(m.kill(CallKind::Eval), Err(NOTBUSY));
    }

    #[test]
    fn script_kill_stops_every_running_read_call() {
        let m = ScriptMonitor::default();
        let (a, b) = (m.start(READ), m.start(READ));
        assert_eq!(m.poll(a, false), Poll::Continue);
        assert_eq!(m.kill(CallKind::Eval), Ok(()));
        assert_eq!(m.poll(a, false), Poll::Kill);
        assert_eq!(m.poll(b, false), Poll::Kill);
        m.end(a);
        m.end(b);
        assert_eq!(m.kill(CallKind::Eval), Err(NOTBUSY));
    }

    #[test]
    fn a_call_that_may_write_is_unkillable_with_redis_text_once_it_wrote() {
        let m = ScriptMonitor::default();
        let t = m.start(WRITE);
        assert_eq!(m.kill(CallKind::Eval), Err(UNKILLABLE_AT_APPLY));
        assert_eq!(m.poll(t, true), Poll::Continue);
        assert_eq!(m.kill(CallKind::Eval), Err(UNKILLABLE_WROTE));
        assert_eq!(m.kill(CallKind::Function), Err(UNKILLABLE_WROTE));
        assert_eq!(m.poll(t, true), Poll::Continue, "never killed");
    }

    #[test]
    fn the_kill_of_the_other_family_answers_its_busy_text() {
        let m = ScriptMonitor::default();
        let t = m.start(READ);
        assert_eq!(m.kill(CallKind::Function), Err(BUSY_EVAL));
        assert_eq!(m.poll(t, false), Poll::Continue);
        let f = m.start(CallInfo {
            kind: CallKind::Function,
            killable: true,
        });
        m.end(t);
        assert_eq!(m.kill(CallKind::Eval), Err(BUSY_FUNCTION));
        assert_eq!(m.kill(CallKind::Function), Ok(()));
        assert_eq!(m.poll(f, false), Poll::Kill);
    }

    #[test]
    fn busy_only_past_the_threshold() {
        let m = ScriptMonitor::new(u64::MAX);
        let t = m.start(READ);
        assert_eq!(m.busy(), None, "far below the threshold");
        m.set_threshold_ms(0);
        assert_eq!(m.busy(), Some(BUSY_EVAL), "a threshold of 0: busy at once");
        m.end(t);
        assert_eq!(m.busy(), None, "nothing running");
        let f = m.start(CallInfo {
            kind: CallKind::Function,
            killable: false,
        });
        assert_eq!(m.busy(), Some(BUSY_FUNCTION));
        m.end(f);
    }
}
