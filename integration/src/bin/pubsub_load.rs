//! The Pub/Sub load driver of `make bench` (bench/pubsub_load.py runs it):
//! PUBLISH throughput and publish-to-receive latency with N subscribers,
//! against dkv or Redis, printing one JSON object `{"rps", "p50", "p99"}`
//! (milliseconds).
//!
//! ```text
//! pubsub_load throughput PUB_PORT SUB_PORTS SUBSCRIBERS CLIENTS PIPELINE REQUESTS PAYLOAD
//! pubsub_load latency    PUB_PORT SUB_PORTS SUBSCRIBERS MESSAGES
//! ```
//!
//! `SUB_PORTS` is a comma-separated list; subscriber `i` connects to port
//! `i % len` (the caller lists a follower first on dkv). Every subscriber is
//! its own task reading its socket in 256 KiB reads and splitting frames
//! natively, so 50 subscribers keep up with the server (the Python reader
//! this replaces did not).
//!
//! - throughput: `redis-benchmark`'s `PUBLISH` row (the bench's other rows
//!   are redis-benchmark's too) while the subscribers read; then every
//!   subscriber must have received every message (checked, bounded).
//! - latency: one publisher sends `PUBLISH ch ts:<ns>` one at a time (each
//!   waits for its reply); `<ns>` is nanoseconds on this process's
//!   monotonic clock, so arrival minus send needs no clock agreement. The
//!   row is p50/p99 over every (message, subscriber) arrival; `rps` is
//!   arrivals per second.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use dkv_integration::frames::frame_len;
use dkv_integration::resp::encode as command;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CHANNEL: &[u8] = b"bench:ps";
/// Bound on connecting, subscribing, one reply.
const STEP: Duration = Duration::from_secs(30);

/// What the subscribers saw: per subscriber, messages counted; for `ts:`
/// payloads, (sent, arrived) nanoseconds.
struct Seen {
    counts: Vec<AtomicU64>,
    arrivals: Mutex<Vec<(u64, u64)>>,
}

/// The payload of a `message` frame (`*3 $7 message $n channel $n payload`).
fn payload(frame: &[u8]) -> Option<&[u8]> {
    let body = frame.strip_suffix(b"\r\n")?;
    let start = body.iter().rposition(|&b| b == b'\n')? + 1;
    Some(&body[start..])
}

/// Connects subscriber `i`, waits for its confirmation, then reads until
/// `stop`, counting messages (frames after the confirmation).
async fn subscriber(
    addr: SocketAddr,
    i: usize,
    seen: Arc<Seen>,
    epoch: Instant,
    ready: tokio::sync::mpsc::Sender<Result<()>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let connected = async {
        let mut s = tokio::time::timeout(STEP, TcpStream::connect(addr))
            .await
            .context("connect timeout")??;
        s.set_nodelay(true)?;
        s.write_all(&command(&[b"SUBSCRIBE", CHANNEL])).await?;
        Ok::<_, anyhow::Error>(s)
    }
    .await;
    let mut s = match connected {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(e)).await;
            return Ok(());
        }
    };
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 18);
    let mut chunk = vec![0u8; 1 << 18];
    let mut confirmed = false;
    loop {
        let n = tokio::select! {
            n = s.read(&mut chunk) => n?,
            _ = stop.changed() => return Ok(()),
        };
        if n == 0 {
            bail!("subscriber {i} was closed");
        }
        let now = epoch.elapsed().as_nanos() as u64;
        buf.extend_from_slice(&chunk[..n]);
        let mut at = 0;
        let mut counted = 0;
        while let Some(len) = frame_len(&buf, at)? {
            let frame = &buf[at..at + len];
            at += len;
            if !confirmed {
                confirmed = true;
                let _ = ready.send(Ok(())).await;
                continue;
            }
            counted += 1;
            if let Some(sent) = payload(frame)
                .and_then(|p| p.strip_prefix(b"ts:"))
                .and_then(|t| std::str::from_utf8(t).ok()?.parse::<u64>().ok())
            {
                seen.arrivals
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((sent, now));
            }
        }
        buf.drain(..at);
        seen.counts[i].fetch_add(counted, Ordering::Relaxed);
    }
}

/// `n` subscribers over `ports`, all confirmed.
struct Subscribers {
    seen: Arc<Seen>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<Result<()>>>,
}

impl Subscribers {
    async fn start(ports: &[u16], n: usize, epoch: Instant) -> Result<Subscribers> {
        let seen = Arc::new(Seen {
            counts: (0..n).map(|_| AtomicU64::new(0)).collect(),
            arrivals: Mutex::new(Vec::new()),
        });
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let (ready, mut confirmations) = tokio::sync::mpsc::channel(n.max(1));
        let mut tasks = Vec::with_capacity(n);
        for i in 0..n {
            let addr = SocketAddr::from(([127, 0, 0, 1], ports[i % ports.len()]));
            tasks.push(tokio::spawn(subscriber(
                addr,
                i,
                seen.clone(),
                epoch,
                ready.clone(),
                stopped.clone(),
            )));
        }
        for _ in 0..n {
            tokio::time::timeout(STEP, confirmations.recv())
                .await
                .context("a subscriber was not confirmed in time")?
                .context("a subscriber ended")??;
        }
        Ok(Subscribers { seen, stop, tasks })
    }

    /// Until every subscriber has `count` messages (bounded by `within`).
    async fn wait_for(&mut self, count: u64, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let least = self
                .seen
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .min();
            if least.unwrap_or(count) >= count {
                return Ok(());
            }
            if let Some(done) = self.tasks.iter_mut().find(|t| t.is_finished()) {
                done.await??;
                bail!("a subscriber stopped reading");
            }
            if Instant::now() > deadline {
                let most = self
                    .seen
                    .counts
                    .iter()
                    .map(|c| c.load(Ordering::Relaxed))
                    .max();
                bail!("subscribers got {least:?}..{most:?} of {count} messages within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn close(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(STEP, task).await;
        }
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let at = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(at).copied().unwrap_or(f64::NAN)
}

async fn throughput(
    pub_port: u16,
    ports: &[u16],
    n: usize,
    clients: usize,
    pipeline: usize,
    requests: u64,
    payload: usize,
) -> Result<String> {
    let mut subs = Subscribers::start(ports, n, Instant::now()).await?;
    let out = tokio::process::Command::new("redis-benchmark")
        .args(["-p", &pub_port.to_string(), "-n", &requests.to_string()])
        .args([
            "-c",
            &clients.to_string(),
            "-P",
            &pipeline.to_string(),
            "--csv",
        ])
        .args(["PUBLISH", "bench:ps", &"x".repeat(payload)])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(900), out)
        .await
        .context("redis-benchmark took over 900 s")??;
    ensure!(
        out.status.success(),
        "redis-benchmark PUBLISH failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let split = |l: &str| -> Vec<String> {
        l.split(',')
            .map(|v| v.trim_matches('"').to_string())
            .collect()
    };
    let header = split(lines.next().context("no redis-benchmark output")?);
    let row = split(lines.next_back().context("no redis-benchmark row")?);
    let field = |name: &str| -> Result<f64> {
        let at = header
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("no {name} column"))?;
        row.get(at)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("bad {name}"))
    };
    let result = format!(
        "{{\"rps\": {}, \"p50\": {}, \"p99\": {}}}",
        field("rps")?,
        field("p50_latency_ms")?,
        field("p99_latency_ms")?
    );
    subs.wait_for(requests, Duration::from_secs(120)).await?;
    subs.close().await;
    Ok(result)
}

async fn latency(pub_port: u16, ports: &[u16], n: usize, messages: u64) -> Result<String> {
    let epoch = Instant::now();
    let mut subs = Subscribers::start(ports, n, epoch).await?;
    let mut publisher = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], pub_port))).await?;
    publisher.set_nodelay(true)?;
    let started = Instant::now();
    let mut reply = Vec::with_capacity(64);
    let mut chunk = [0u8; 64];
    for _ in 0..messages {
        let ts = format!("ts:{}", epoch.elapsed().as_nanos());
        publisher
            .write_all(&command(&[b"PUBLISH", CHANNEL, ts.as_bytes()]))
            .await?;
        reply.clear();
        while !reply.ends_with(b"\r\n") {
            let n = tokio::time::timeout(STEP, publisher.read(&mut chunk))
                .await
                .context("no PUBLISH reply in time")??;
            ensure!(n > 0, "the publisher was closed");
            reply.extend_from_slice(&chunk[..n]);
        }
        ensure!(
            reply.starts_with(b":"),
            "PUBLISH answered {:?}",
            String::from_utf8_lossy(&reply)
        );
    }
    subs.wait_for(messages, Duration::from_secs(60)).await?;
    let took = started.elapsed().as_secs_f64();
    let arrivals =
        std::mem::take(&mut *subs.seen.arrivals.lock().unwrap_or_else(|e| e.into_inner()));
    subs.close().await;
    ensure!(
        arrivals.len() as u64 == messages * n as u64,
        "{} timed arrivals, want {}",
        arrivals.len(),
        messages * n as u64
    );
    let mut ms: Vec<f64> = arrivals
        .iter()
        .map(|(sent, got)| got.saturating_sub(*sent) as f64 / 1e6)
        .collect();
    ms.sort_by(f64::total_cmp);
    Ok(format!(
        "{{\"rps\": {}, \"p50\": {}, \"p99\": {}}}",
        ms.len() as f64 / took,
        quantile(&ms, 0.5),
        quantile(&ms, 0.99)
    ))
}

fn number<T: std::str::FromStr>(args: &[String], at: usize, what: &str) -> Result<T> {
    args.get(at)
        .and_then(|a| a.parse().ok())
        .with_context(|| format!("argument {at}: want {what}"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: pubsub_load throughput PUB_PORT SUB_PORTS SUBSCRIBERS CLIENTS PIPELINE REQUESTS PAYLOAD | latency PUB_PORT SUB_PORTS SUBSCRIBERS MESSAGES";
    let mode = args.get(1).context(usage)?.clone();
    let pub_port: u16 = number(&args, 2, "a port")?;
    let ports: Vec<u16> = args
        .get(3)
        .context(usage)?
        .split(',')
        .map(|p| p.parse().with_context(|| format!("bad port {p:?}")))
        .collect::<Result<_>>()?;
    ensure!(!ports.is_empty(), "no subscriber ports");
    let n: usize = number(&args, 4, "a subscriber count")?;
    let json = match mode.as_str() {
        "throughput" => {
            throughput(
                pub_port,
                &ports,
                n,
                number(&args, 5, "clients")?,
                number(&args, 6, "pipeline")?,
                number(&args, 7, "requests")?,
                number(&args, 8, "payload bytes")?,
            )
            .await?
        }
        "latency" => latency(pub_port, &ports, n, number(&args, 5, "messages")?).await?,
        _ => bail!("{usage}"),
    };
    println!("{json}");
    Ok(())
}
