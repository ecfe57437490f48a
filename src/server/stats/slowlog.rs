//! The slow log (`SLOWLOG`): the node's most recent requests that took at
//! least `slowlog-log-slower-than` microseconds, newest first, at most
//! `slowlog-max-len` of them, each in Redis's shape (id, unix time,
//! duration, arguments, client address, client name).
//!
//! Arguments are kept as Redis keeps them: at most [`MAX_ARGS`] (the last
//! one then says how many more there were) and each at most
//! [`MAX_STRING_BYTES`] (then followed by how many more bytes), so an entry
//! is bounded whatever the request.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use bytes::Bytes;

use crate::server::command::Session;
use crate::server::reply::Reply;

/// Most arguments an entry keeps (Redis's `SLOWLOG_ENTRY_MAX_ARGC`).
pub const MAX_ARGS: usize = 32;
/// Most bytes of an argument an entry keeps (`SLOWLOG_ENTRY_MAX_STRING`).
pub const MAX_STRING_BYTES: usize = 128;
/// `slowlog-log-slower-than`'s default, in microseconds.
pub const DEFAULT_SLOWER_THAN_USEC: i64 = 10_000;
/// `slowlog-max-len`'s default.
pub const DEFAULT_MAX_LEN: usize = 128;
/// The largest `slowlog-max-len` accepted (Redis takes up to LONG_MAX; a
/// bound keeps the log's memory bounded: ~5 KB per entry at most).
pub const MAX_MAX_LEN: usize = 100_000;

/// One logged request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Unique, increasing id.
    pub id: u64,
    /// Unix time in seconds when it was logged.
    pub unix_secs: i64,
    /// Its duration in microseconds.
    pub usec: u64,
    /// Its arguments, cut as Redis cuts them.
    pub args: Vec<Bytes>,
    /// The client's address (shown as `ip:port`, empty for none): kept
    /// unformatted, since under a saturating load every request can cross
    /// the threshold (a write's time includes its Raft round) and only
    /// `SLOWLOG GET` reads it.
    pub addr: Option<SocketAddr>,
    /// The client's name (empty: none).
    pub name: Bytes,
}

impl Entry {
    /// The entry as `SLOWLOG GET` shows it.
    pub fn reply(&self) -> Reply {
        Reply::Array(vec![
            Reply::Integer(self.id as i64),
            Reply::Integer(self.unix_secs),
            Reply::Integer(i64::try_from(self.usec).unwrap_or(i64::MAX)),
            Reply::Array(self.args.iter().cloned().map(Reply::Bulk).collect()),
            Reply::bulk(self.addr.map(|a| a.to_string()).unwrap_or_default()),
            Reply::Bulk(self.name.clone()),
        ])
    }
}

/// The arguments as an entry keeps them.
pub fn cut_args(args: &[Bytes]) -> Vec<Bytes> {
    let kept = args.len().min(MAX_ARGS);
    let mut out = Vec::with_capacity(kept);
    for (j, arg) in args.iter().take(kept).enumerate() {
        if kept != args.len() && j == kept - 1 {
            out.push(Bytes::from(format!(
                "... ({} more arguments)",
                args.len() - kept + 1
            )));
        } else if arg.len() > MAX_STRING_BYTES {
            let mut cut = arg[..MAX_STRING_BYTES].to_vec();
            cut.extend_from_slice(
                format!("... ({} more bytes)", arg.len() - MAX_STRING_BYTES).as_bytes(),
            );
            out.push(Bytes::from(cut));
        } else {
            out.push(arg.clone());
        }
    }
    out
}

/// The slow log and its two settings.
#[derive(Debug)]
pub struct SlowLog {
    entries: Mutex<VecDeque<Entry>>,
    next_id: AtomicU64,
    slower_than_usec: AtomicI64,
    max_len: AtomicUsize,
}

impl Default for SlowLog {
    fn default() -> SlowLog {
        SlowLog {
            entries: Mutex::new(VecDeque::new()),
            next_id: AtomicU64::new(0),
            slower_than_usec: AtomicI64::new(DEFAULT_SLOWER_THAN_USEC),
            max_len: AtomicUsize::new(DEFAULT_MAX_LEN),
        }
    }
}

impl SlowLog {
    /// `slowlog-log-slower-than` (negative: the log is off).
    pub fn slower_than_usec(&self) -> i64 {
        self.slower_than_usec.load(Ordering::Relaxed)
    }

    /// Sets `slowlog-log-slower-than`.
    pub fn set_slower_than_usec(&self, usec: i64) {
        self.slower_than_usec.store(usec, Ordering::Relaxed);
    }

    /// `slowlog-max-len`.
    pub fn max_len(&self) -> usize {
        self.max_len.load(Ordering::Relaxed)
    }

    /// Sets `slowlog-max-len` (older entries beyond it go at the next entry,
    /// as in Redis).
    pub fn set_max_len(&self, len: usize) {
        self.max_len.store(len.min(MAX_MAX_LEN), Ordering::Relaxed);
    }

    /// Whether a request that took `usec` is logged.
    pub fn logs(&self, usec: u64) -> bool {
        let threshold = self.slower_than_usec();
        threshold >= 0 && (usec as i128) >= i128::from(threshold)
    }

    /// Counts a request that took `usec` as [`SlowLog::offer`] would, without
    /// keeping it: for an entry a later one would push out before any reader
    /// saw it. Its id is used up, so the ids of the entries kept are the
    /// same either way.
    pub fn pass_over(&self, usec: u64) {
        if self.logs(usec) {
            self.next_id.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Logs the request if it took long enough.
    pub fn offer(&self, args: &[Bytes], usec: u64, session: &Session) {
        if !self.logs(usec) {
            return;
        }
        let entry = Entry {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            unix_secs: unix_secs(),
            usec,
            args: cut_args(args),
            addr: session.peer,
            name: session.name.clone().unwrap_or_default(),
        };
        let max = self.max_len();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.push_front(entry);
        entries.truncate(max);
    }

    /// The newest `count` entries (all with None), newest first.
    pub fn newest(&self, count: Option<usize>) -> Vec<Entry> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let count = count.unwrap_or(entries.len());
        entries.iter().take(count).cloned().collect()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The newest entry's id and duration (None when empty).
    pub fn last(&self) -> Option<(u64, u64)> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.front().map(|e| (e.id, e.usec))
    }

    /// `SLOWLOG RESET` (ids keep increasing, as in Redis).
    pub fn reset(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
