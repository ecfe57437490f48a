//! TCP proxies on the peer links, so a test can partition, blackhole or slow any
//! directed link `i -> j` between two `dkv-server` processes.
//!
//! Node `i`'s config names, as peer `j`'s `http_addr`, the listen address of the
//! proxy for link `i -> j`; that proxy connects to `j`'s real HTTP port. Every peer
//! RPC `i` starts (Raft messages, forwarded writes, read-index requests) and its
//! answer travel over that one link, so cutting `i -> j` and `j -> i` separates the
//! two nodes completely, and cutting only one of them is an asymmetric fault.
//!
//! Modes ([`LinkMode`]), switched at once through a `tokio::sync::watch`:
//! - `Pass`: bytes are copied both ways;
//! - `Drop`: open connections are closed, new ones are accepted and closed at once
//!   (the sender sees a reset or EOF quickly);
//! - `Blackhole`: nothing is forwarded any more and nothing is closed: bytes stay in
//!   the kernel buffers, the sender sees only timeouts. When the link leaves the
//!   blackhole, the connections it held are closed (as a real connection would have
//!   been timed out by then);
//! - `Delay(d)`: every chunk is forwarded `d` after it was read, in order.
//!
//! The proxies run as tasks on the test's tokio runtime and are aborted when the
//! [`ProxyMesh`] is dropped. They listen on 127.0.0.1 only.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What a link does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkMode {
    /// Forward everything.
    Pass,
    /// Close connections (fast failure).
    Drop,
    /// Accept, never forward, never close (timeouts).
    Blackhole,
    /// Forward every chunk this long after it arrived.
    Delay(Duration),
}

impl LinkMode {
    fn cuts(self) -> bool {
        matches!(self, LinkMode::Drop | LinkMode::Blackhole)
    }
}

/// Bytes read at once by a pump.
const CHUNK: usize = 64 * 1024;
/// Bound on connecting to the upstream node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// One proxied directed link.
struct Link {
    listen: SocketAddr,
    mode: watch::Sender<LinkMode>,
    task: JoinHandle<()>,
}

/// The proxies for every directed link between `n` nodes.
pub struct ProxyMesh {
    n: usize,
    links: BTreeMap<(usize, usize), Link>,
}

impl ProxyMesh {
    /// Bind a proxy for every ordered pair `(i, j)`, `i != j`, forwarding to
    /// `upstream[j]`. Must run inside a tokio runtime.
    ///
    /// # Errors
    /// A listener cannot be bound.
    pub fn start(upstream: &[SocketAddr]) -> Result<ProxyMesh> {
        let n = upstream.len();
        let mut links = BTreeMap::new();
        for from in 0..n {
            for (to, &up) in upstream.iter().enumerate() {
                if from == to {
                    continue;
                }
                let std_listener = std::net::TcpListener::bind("127.0.0.1:0")
                    .context("bind a proxy listener on 127.0.0.1:0")?;
                std_listener
                    .set_nonblocking(true)
                    .context("set_nonblocking")?;
                let listen = std_listener.local_addr().context("local_addr")?;
                let listener = TcpListener::from_std(std_listener)
                    .context("proxy listener (is a tokio runtime running?)")?;
                let (mode, rx) = watch::channel(LinkMode::Pass);
                let task = tokio::spawn(serve(listener, up, rx));
                links.insert((from, to), Link { listen, mode, task });
            }
        }
        Ok(ProxyMesh { n, links })
    }

    /// Number of nodes the mesh connects.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True if the mesh connects no nodes.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The address node `from` must use to reach node `to`.
    ///
    /// # Panics
    /// If there is no such link.
    pub fn listen_addr(&self, from: usize, to: usize) -> SocketAddr {
        self.links[&(from, to)].listen
    }

    /// Set the mode of link `from -> to` (ignored for `from == to`).
    pub fn set(&self, from: usize, to: usize, mode: LinkMode) {
        if let Some(link) = self.links.get(&(from, to)) {
            link.mode.send_replace(mode);
        }
    }

    /// The current mode of link `from -> to`.
    pub fn mode(&self, from: usize, to: usize) -> Option<LinkMode> {
        self.links.get(&(from, to)).map(|l| *l.mode.borrow())
    }

    /// Set every link to `mode`.
    pub fn set_all(&self, mode: LinkMode) {
        for link in self.links.values() {
            link.mode.send_replace(mode);
        }
    }

    /// Links between nodes of the same group pass; every other link gets `cut`.
    /// A node in no group is cut from everyone.
    pub fn partition(&self, groups: &[&[usize]], cut: LinkMode) {
        let group_of = |i: usize| groups.iter().position(|g| g.contains(&i));
        for &(from, to) in self.links.keys() {
            let same = matches!((group_of(from), group_of(to)), (Some(a), Some(b)) if a == b);
            self.set(from, to, if same { LinkMode::Pass } else { cut });
        }
    }

    /// A human-readable list of the links that are not passing.
    pub fn describe(&self) -> String {
        let faulty: Vec<String> = self
            .links
            .iter()
            .filter_map(|(&(f, t), l)| {
                let m = *l.mode.borrow();
                (m != LinkMode::Pass).then(|| format!("{f}->{t}:{m:?}"))
            })
            .collect();
        if faulty.is_empty() {
            "all links pass".into()
        } else {
            faulty.join(" ")
        }
    }
}

impl Drop for ProxyMesh {
    fn drop(&mut self) {
        for link in self.links.values() {
            link.task.abort();
        }
    }
}

async fn serve(listener: TcpListener, upstream: SocketAddr, mode: watch::Receiver<LinkMode>) {
    // Connection tasks are aborted with the listener task.
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((inbound, _)) = accepted else {
                    // Out of fds or similar: back off briefly rather than spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                conns.spawn(connection(inbound, upstream, mode.clone()));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Wait until the mode is no longer `current`'s kind of cut (or the mesh is gone).
async fn wait_change(mode: &mut watch::Receiver<LinkMode>) {
    let _ = mode.changed().await;
}

async fn connection(inbound: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<LinkMode>) {
    let initial = *mode.borrow_and_update();
    match initial {
        LinkMode::Drop => return,
        LinkMode::Blackhole => {
            // Hold the connection open and silent until the mode changes, then close.
            wait_change(&mut mode).await;
            return;
        }
        LinkMode::Pass | LinkMode::Delay(_) => {}
    }
    let outbound = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(upstream)).await {
        Ok(Ok(s)) => s,
        _ => return, // upstream down: the client sees the connection close
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (in_r, in_w) = inbound.into_split();
    let (out_r, out_w) = outbound.into_split();
    // When either direction ends (EOF, error, cut), close both.
    tokio::select! {
        () = pump(in_r, out_w, mode.clone()) => {}
        () = pump(out_r, in_w, mode) => {}
    }
}

/// Copy `from` to `to` under the link's mode. Returns when the connection should
/// close: EOF or error on either side, `Drop`, or the end of a `Blackhole`.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut mode: watch::Receiver<LinkMode>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((at, bytes)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buf = vec![0u8; CHUNK];
    let aborted = loop {
        let current = *mode.borrow_and_update();
        match current {
            LinkMode::Drop => break true,
            LinkMode::Blackhole => {
                wait_change(&mut mode).await;
                break true;
            }
            LinkMode::Pass | LinkMode::Delay(_) => {}
        }
        tokio::select! {
            read = from.read(&mut buf) => {
                let n = match read {
                    Ok(0) | Err(_) => break false,
                    Ok(n) => n,
                };
                let now_mode = *mode.borrow();
                if now_mode.cuts() {
                    // Cut while reading: this chunk is lost with the connection.
                    continue;
                }
                let delay = match now_mode {
                    LinkMode::Delay(d) => d,
                    _ => Duration::ZERO,
                };
                if tx.send((Instant::now() + delay, buf[..n].to_vec())).is_err() {
                    break true;
                }
            }
            changed = mode.changed() => {
                if changed.is_err() {
                    break true;
                }
            }
        }
    };
    if aborted {
        writer.abort();
    } else {
        // EOF: deliver what is queued (bounded by the delay), then shut down.
        drop(tx);
        let _ = writer.await;
    }
}
