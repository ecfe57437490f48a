//! What a node sees of the script calls it runs, for what needs a clock
//! (which `kv` never reads): Redis's `BUSY` reply once a call has run past
//! `busy-reply-threshold`, and `SCRIPT KILL` / `FUNCTION KILL`.
//!
//! The node gives `Db` a [`Watch`] (not state: not in snapshots, digests or
//! equality); every script call tells it when it starts and ends, and the
//! budget hook polls it every `HOOK_EVERY` instructions. Only a call that
//! cannot write may be killed ([`CallInfo::killable`]): a call at apply that
//! may write runs on every replica, and stopping it on one node would leave
//! that node's state different from the others'. Killing a read-only call
//! changes nothing but its own reply, so a wall-clock decision is safe there.

use std::fmt;
use std::sync::Arc;

/// Which family a call belongs to (the kill command that may stop it and
/// the `BUSY` text name it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallKind {
    /// EVAL, EVALSHA and their `_RO` forms (SCRIPT KILL).
    Eval,
    /// FCALL, FCALL_RO (FUNCTION KILL).
    Function,
}

/// One call as it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallInfo {
    /// EVAL or FCALL family.
    pub kind: CallKind,
    /// The call cannot write (a read, EVAL_RO, `no-writes`): it may be killed.
    pub killable: bool,
}

/// What the budget hook does after a poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// Run on.
    Continue,
    /// SCRIPT KILL or FUNCTION KILL asked this call to stop.
    Kill,
}

/// A node's view of its running script calls. Implementations may read a
/// clock and must be cheap: [`Watch::poll`] runs every `HOOK_EVERY` Lua
/// instructions.
pub trait Watch: Send + Sync {
    /// A call starts on this node; the token names it in later calls.
    fn start(&self, call: CallInfo) -> u64;
    /// The call `token` is still running; `dirty`: it has run a write
    /// command.
    fn poll(&self, token: u64, dirty: bool) -> Poll;
    /// The call `token` ended (however it ended).
    fn end(&self, token: u64);
}

/// `Db`'s slot for the node's [`Watch`]: empty in tests and the simulator
/// (nothing is ever busy or killed there); always equal, so it never makes
/// two maps differ.
#[derive(Clone, Default)]
pub struct WatchSlot(pub Option<Arc<dyn Watch>>);

impl fmt::Debug for WatchSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "WatchSlot(set)"
        } else {
            "WatchSlot(none)"
        })
    }
}

impl PartialEq for WatchSlot {
    fn eq(&self, _: &WatchSlot) -> bool {
        true
    }
}

impl Eq for WatchSlot {}

/// The error of a call stopped by SCRIPT KILL (Redis 7.0's text; the
/// script's position follows it, as for any script error).
pub const KILLED_ERROR: &str = "ERR Script killed by user with SCRIPT KILL...";
