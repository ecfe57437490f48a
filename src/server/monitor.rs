//! `MONITOR`: every command this node runs, as one line per command in
//! Redis's format, to every client that asked for it.
//!
//! A command is fed when its connection has prepared it and it was not
//! refused (unknown, arity, NOAUTH, NOPERM), so monitors see commands in the
//! order each connection runs them; commands inside `MULTI` are shown when
//! queued. Admin commands (CONFIG, DEBUG, SLOWLOG ...) are not shown, and
//! AUTH/HELLO arguments are `(redacted)`, as in Redis.
//!
//! Bounds: each monitor has a channel of [`QUEUE_LINES`] lines; the
//! monitor's connection moves lines into its output buffer only while that
//! is below its back-pressure point, where the client output limits apply
//! as to any client. A monitor that falls [`QUEUE_LINES`] behind is
//! dropped and its connection closed, so a monitor that does not read costs
//! bounded memory and never slows the commands it watches. With no monitor
//! attached, feeding costs one relaxed atomic load per command.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::cmd::{CommandSpec, Flags};
use crate::server::command::Session;

/// Lines a monitor may fall behind before it is closed.
pub const QUEUE_LINES: usize = 16 * 1024;

/// The monitors attached to this node.
#[derive(Debug, Default)]
pub struct Monitors {
    count: AtomicUsize,
    senders: Mutex<Vec<(u64, mpsc::Sender<Bytes>)>>,
}

impl Monitors {
    /// Attaches client `id`; its lines arrive on the returned receiver,
    /// which ends when the monitor was dropped for falling behind.
    pub fn attach(&self, id: u64) -> mpsc::Receiver<Bytes> {
        let (tx, rx) = mpsc::channel(QUEUE_LINES);
        let mut senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        senders.retain(|(other, _)| *other != id);
        senders.push((id, tx));
        self.count.store(senders.len(), Ordering::Relaxed);
        rx
    }

    /// Detaches client `id` (its connection closed or sent RESET).
    pub fn detach(&self, id: u64) {
        let mut senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        senders.retain(|(other, _)| *other != id);
        self.count.store(senders.len(), Ordering::Relaxed);
    }

    /// Monitors attached.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// True when no monitor is attached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Feeds a command `session` runs to every monitor.
    pub fn feed(&self, spec: &CommandSpec, session: &Session, args: &[Bytes]) {
        if self.is_empty() || spec.flags.contains(Flags::ADMIN) {
            return;
        }
        let line = Bytes::from(line(unix_micros(), session, spec, args));
        let mut senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        // A monitor that is full or gone is dropped: its receiver ends.
        senders.retain(|(_, tx)| tx.try_send(line.clone()).is_ok());
        self.count.store(senders.len(), Ordering::Relaxed);
    }
}

fn unix_micros() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

/// One monitor line: `+1700000000.123456 [0 127.0.0.1:5555] "SET" "k" "v"`
/// and CRLF.
pub fn line(micros: u128, session: &Session, spec: &CommandSpec, args: &[Bytes]) -> String {
    let mut out = format!(
        "+{}.{:06} [{} {}]",
        micros / 1_000_000,
        micros % 1_000_000,
        session.db,
        session.peer.map(|a| a.to_string()).unwrap_or_default()
    );
    let redact = matches!(spec.name, "auth" | "hello" | "migrate");
    for (j, arg) in args.iter().enumerate() {
        out.push(' ');
        if redact && j > 0 && !(spec.name == "hello" && j == 1) {
            out.push_str("\"(redacted)\"");
        } else {
            repr(arg, &mut out);
        }
    }
    out.push_str("\r\n");
    out
}

/// Redis's `sdscatrepr`: the bytes quoted, with `\\ \" \n \r \t \a \b`
/// escaped and other unprintable bytes as `\xHH`.
pub fn repr(bytes: &[u8], out: &mut String) {
    out.push('"');
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            7 => out.push_str("\\a"),
            8 => out.push_str("\\b"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::lookup;

    fn args(list: &[&[u8]]) -> Vec<Bytes> {
        list.iter().map(|a| Bytes::copy_from_slice(a)).collect()
    }

    #[test]
    fn lines_are_in_redis_format() {
        let mut session = Session::new(1, Some("127.0.0.1:5555".parse().expect("addr")), None);
        session.db = 3;
        let (_, set) = lookup(b"set").expect("set");
        assert_eq!(
            line(
                1_700_000_000_123_456,
                &session,
                set,
                &args(&[b"SET", b"k", b"a\"b\\\n\x01\xff"])
            ),
            "+1700000000.123456 [3 127.0.0.1:5555] \"SET\" \"k\" \"a\\\"b\\\\\\n\\x01\\xff\"\r\n"
        );
        let (_, auth) = lookup(b"auth").expect("auth");
        assert_eq!(
            line(5, &session, auth, &args(&[b"AUTH", b"u", b"p"])),
            "+0.000005 [3 127.0.0.1:5555] \"AUTH\" \"(redacted)\" \"(redacted)\"\r\n"
        );
    }

    #[test]
    fn a_monitor_that_falls_behind_is_dropped_and_admin_commands_are_not_fed() {
        let monitors = Monitors::default();
        let session = Session::new(1, None, None);
        let (_, ping) = lookup(b"ping").expect("ping");
        let (_, config) = lookup(b"config").expect("config");
        monitors.feed(ping, &session, &args(&[b"PING"]));
        let mut rx = monitors.attach(7);
        assert_eq!(monitors.len(), 1);
        monitors.feed(config, &session, &args(&[b"CONFIG", b"GET", b"x"]));
        monitors.feed(ping, &session, &args(&[b"PING"]));
        let got = rx.try_recv().expect("one line");
        assert!(got.ends_with(b"\"PING\"\r\n"), "{got:?}");
        assert!(rx.try_recv().is_err());
        for _ in 0..=QUEUE_LINES {
            monitors.feed(ping, &session, &args(&[b"PING"]));
        }
        assert!(monitors.is_empty(), "dropped when full");
        let mut drained = 0;
        while rx.try_recv().is_ok() {
            drained += 1;
        }
        assert_eq!(drained, QUEUE_LINES);
        assert!(matches!(
            rx.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
        let _rx = monitors.attach(8);
        monitors.detach(8);
        assert!(monitors.is_empty());
    }
}
