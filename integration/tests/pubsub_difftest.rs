//! Differential test of Pub/Sub (issue 15): one dkv node against a real
//! `redis-server`, the same seeded sequence of commands over several
//! connections on each (some RESP2, some RESP3 after `HELLO 3`), and every
//! byte each connection receives compared: replies, confirmations and
//! message frames, in order.
//!
//! Generated: `SUBSCRIBE`/`UNSUBSCRIBE`/`PSUBSCRIBE`/`PUNSUBSCRIBE`/
//! `SSUBSCRIBE`/`SUNSUBSCRIBE` with one to three names (repeats included)
//! and the unsubscribes also without arguments; patterns with glob specials
//! (`*`, `?`, classes, ranges, negation, escapes); `PUBLISH`/`SPUBLISH`;
//! `PUBSUB CHANNELS|NUMSUB|NUMPAT|SHARDCHANNELS|SHARDNUMSUB|HELP` and a bad
//! subcommand; `PING` with and without a message; `RESET` (which also
//! takes a RESP3 connection back to RESP2; some then say `HELLO 3` again);
//! commands a RESP2 subscriber may not send; wrong arities; and pipelined
//! `MULTI` blocks holding (un)subscribes or publishes, and writes (not
//! both kinds: dkv carries out a transaction's (un)subscribes after its
//! other commands, as the README says, where Redis keeps their order).
//!
//! After each command every connection is sent `PING <token>` and read up
//! to its reply, so each step compares exactly what each connection got
//! from that step, wherever it was sent. This also checks the order Redis
//! gives: a message is on its subscriber's connection before the `PUBLISH`
//! that sent it is answered (the PING, sent after that answer, comes later).
//!
//! Where Redis's own order is its hash tables' (not a property clients can
//! rely on), both sides are put in byte order before comparing: the array
//! of `PUBSUB CHANNELS`/`SHARDCHANNELS`, the channel names in the
//! confirmations of an unsubscribe-all (their counts stay in order), and
//! runs of `pmessage` frames one connection gets for one message. And a
//! push that a command inside `EXEC` produced is compared as the frame
//! before EXEC's reply (RESP3 clients read pushes out of band; Redis writes
//! it inside EXEC's array, after the elements before that command's).
//!
//! `PUBSUB_DIFFTEST_SEEDS=a,b,c` and `PUBSUB_DIFFTEST_STEPS=n` (per seed)
//! change the run (`make pubsub-difftest N=… SEED=…`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use dkv_integration::frames::{frame_len, FrameConn as Conn};
use dkv_integration::redis_server::start_redis;
use dkv_integration::rng::Rng;
use dkv_integration::{program_available, Cluster};

/// Connections per server; the first half speak RESP2, the rest RESP3.
const CONNS: usize = 4;
/// Bound on one frame's arrival.
const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// Channels the generator names (glob specials among them, literally).
const CHANNELS: &[&str] = &[
    "a", "b", "ch1", "ch2", "chx", "news.uk", "news.fr", "h?llo", "hello", "x*", "[ab]", "",
];
/// Patterns: every glob special Redis's `stringmatchlen` knows.
const PATTERNS: &[&str] = &[
    "*", "a*", "ch?", "ch[12]", "ch[^1]", "ch[a-z]", "news.*", "h\\?llo", "x\\*", "\\[ab\\]",
    "[ab]", "*.uk", "nomatch",
];
const MESSAGES: &[&str] = &["hi", "", "x y", "bin\0ary", "1234567890"];

// ---- raw connections ---------------------------------------------------------

fn encode(args: &[Vec<u8>]) -> Vec<u8> {
    let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    dkv_integration::resp::encode(&refs)
}

/// Sends `PING token` on `conn` and returns every frame before its reply,
/// and the reply (in whichever form the connection's mode gives).
async fn sync(conn: &mut Conn, token: &str) -> Result<Vec<Vec<u8>>> {
    conn.send(&[b"PING".to_vec(), token.as_bytes().to_vec()])
        .await?;
    let bulk = format!("${}\r\n{token}\r\n", token.len()).into_bytes();
    let array = format!("*2\r\n$4\r\npong\r\n${}\r\n{token}\r\n", token.len()).into_bytes();
    let mut frames = Vec::new();
    for _ in 0..10_000 {
        let frame = conn.frame(FRAME_TIMEOUT).await?;
        let done = frame == bulk || frame == array;
        frames.push(frame);
        if done {
            return Ok(frames);
        }
    }
    bail!("no PING reply after 10,000 frames")
}

// ---- normalizing Redis's hash-table orders ------------------------------------

/// One frame at `at` with every push frame inside it taken out and
/// appended to `pushes` (a RESP3 client reads pushes out of band, and
/// Redis writes a push that a command in EXEC produced in the middle of
/// EXEC's array). Returns the bytes consumed and the frame without them.
fn hoist(buf: &[u8], at: usize, pushes: &mut Vec<Vec<u8>>) -> Result<(usize, Vec<u8>)> {
    let kind = *buf.get(at).context("truncated")?;
    if !matches!(kind, b'*' | b'~' | b'%' | b'>') {
        let len = frame_len(buf, at)?.context("incomplete frame")?;
        return Ok((len, buf[at..at + len].to_vec()));
    }
    let nl = at
        + buf[at..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("no CRLF")?;
    let n: i64 = std::str::from_utf8(&buf[at + 1..nl])?.parse()?;
    let mut out = buf[at..nl + 2].to_vec();
    let mut pos = nl + 2;
    let items = if kind == b'%' { n * 2 } else { n.max(0) };
    for _ in 0..items {
        while kind != b'>' && buf.get(pos) == Some(&b'>') {
            let (len, push) = hoist(buf, pos, pushes)?;
            pushes.push(push);
            pos += len;
        }
        if pos == buf.len() {
            // EXEC of (un)subscribes in RESP3: its elements are pushes
            // (Redis counts commands, not confirmations).
            break;
        }
        let (len, item) = hoist(buf, pos, pushes)?;
        out.extend(item);
        pos += len;
    }
    Ok((pos - at, out))
}

/// A step's frames with the pushes Redis nests in an array hoisted ahead
/// of it, as separate frames (see [`hoist`]).
fn canonical(frames: &[Vec<u8>]) -> Result<Vec<Vec<u8>>> {
    let bytes = frames.concat();
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let mut pushes = Vec::new();
        let (len, frame) = hoist(&bytes, at, &mut pushes)?;
        out.extend(pushes);
        out.push(frame);
        at += len;
    }
    Ok(out)
}

/// The elements of an array or push frame, as byte slices of `frame`.
fn elements(frame: &[u8]) -> Option<(u8, Vec<&[u8]>)> {
    let kind = *frame.first()?;
    if !matches!(kind, b'*' | b'>') {
        return None;
    }
    let nl = frame.windows(2).position(|w| w == b"\r\n")?;
    let n: usize = std::str::from_utf8(&frame[1..nl]).ok()?.parse().ok()?;
    let mut at = nl + 2;
    let mut items = Vec::with_capacity(n);
    for _ in 0..n {
        let len = frame_len(frame, at).ok()??;
        items.push(&frame[at..at + len]);
        at += len;
    }
    Some((kind, items))
}

fn rebuild(kind: u8, items: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("{}{}\r\n", kind as char, items.len()).into_bytes();
    for item in items {
        out.extend_from_slice(item);
    }
    out
}

/// The word of a Pub/Sub frame (`message`, `unsubscribe` ...).
fn word(frame: &[u8]) -> Option<Vec<u8>> {
    let (_, items) = elements(frame)?;
    let first = items.first()?;
    let nl = first.windows(2).position(|w| w == b"\r\n")?;
    (first.first() == Some(&b'$')).then(|| first[nl + 2..first.len() - 2].to_vec())
}

/// The first word of every Pub/Sub frame.
const PUBSUB_WORDS: &[&[u8]] = &[
    b"message",
    b"pmessage",
    b"smessage",
    b"subscribe",
    b"psubscribe",
    b"ssubscribe",
    b"unsubscribe",
    b"punsubscribe",
    b"sunsubscribe",
    b"pong",
];

/// Puts one step's frames of one connection in an order both servers
/// share (see the module docs). `sorted_reply`: the step's command answers
/// with an array in hash order.
fn normalize(frames: &mut [Vec<u8>], sorted_reply: bool) {
    // Runs of pmessage frames (one message, several patterns): sorted.
    // Runs of one unsubscribe word's confirmations (an unsubscribe-all):
    // the names sorted, the counts kept in place.
    let mut at = 0;
    while at < frames.len() {
        let Some(w) = word(&frames[at]) else {
            at += 1;
            continue;
        };
        let name_at = match w.as_slice() {
            b"pmessage" => 0,
            b"unsubscribe" | b"punsubscribe" | b"sunsubscribe" => 1,
            _ => {
                at += 1;
                continue;
            }
        };
        let mut end = at + 1;
        while end < frames.len() && word(&frames[end]).as_deref() == Some(w.as_slice()) {
            end += 1;
        }
        if name_at == 0 {
            frames[at..end].sort();
            at = end;
            continue;
        }
        let mut names: Vec<Vec<u8>> = frames[at..end]
            .iter()
            .filter_map(|f| {
                elements(f).and_then(|(_, items)| items.get(name_at).map(|n| n.to_vec()))
            })
            .collect();
        names.sort();
        for (frame, name) in frames[at..end].iter_mut().zip(names) {
            if let Some((kind, mut items)) = elements(frame).map(|(k, i)| (k, i.to_vec())) {
                if name_at < items.len() {
                    items[name_at] = &name;
                    *frame = rebuild(kind, &items);
                }
            }
        }
        at = end;
    }
    if sorted_reply {
        for frame in frames.iter_mut() {
            let pubsub = word(frame).is_some_and(|w| PUBSUB_WORDS.contains(&w.as_slice()));
            if frame.first() == Some(&b'*') && !pubsub {
                if let Some((kind, mut items)) = elements(frame).map(|(k, i)| (k, i.to_vec())) {
                    items.sort();
                    *frame = rebuild(kind, &items);
                }
            }
        }
    }
}

// ---- the generator ---------------------------------------------------------------

/// What one step sends: the connection, the requests (several for a
/// pipelined MULTI block), and whether the reply's array is in hash order.
struct Step {
    conn: usize,
    requests: Vec<Vec<Vec<u8>>>,
    sorted_reply: bool,
    /// A `HELLO 3` after RESET: its reply names each server (not compared).
    silent: bool,
}

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn names(rng: &mut Rng, from: &[&str], least: usize) -> Vec<Vec<u8>> {
    let n = least + rng.below(4 - least);
    (0..n).map(|_| b(rng.pick(from))).collect()
}

fn with(command: &str, rest: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut args = vec![b(command)];
    args.extend(rest);
    args
}

/// One command (not a MULTI block).
fn command(rng: &mut Rng) -> (Vec<Vec<u8>>, bool) {
    let channel = |rng: &mut Rng| b(rng.pick(CHANNELS));
    let args = match rng.below(100) {
        0..=13 => with("SUBSCRIBE", names(rng, CHANNELS, 1)),
        14..=21 => with("UNSUBSCRIBE", names(rng, CHANNELS, 0)),
        22..=31 => with("PSUBSCRIBE", names(rng, PATTERNS, 1)),
        32..=37 => with("PUNSUBSCRIBE", names(rng, PATTERNS, 0)),
        38..=43 => with("SSUBSCRIBE", names(rng, CHANNELS, 1)),
        44..=47 => with("SUNSUBSCRIBE", names(rng, CHANNELS, 0)),
        48..=65 => vec![b("PUBLISH"), channel(rng), b(rng.pick(MESSAGES))],
        66..=71 => vec![b("SPUBLISH"), channel(rng), b(rng.pick(MESSAGES))],
        72..=74 => {
            let mut args = vec![b("PUBSUB"), b("CHANNELS")];
            if rng.chance(60) {
                args.push(b(rng.pick(PATTERNS)));
            }
            return (args, true);
        }
        75..=76 => {
            let mut args = vec![b("PUBSUB"), b("SHARDCHANNELS")];
            if rng.chance(60) {
                args.push(b(rng.pick(PATTERNS)));
            }
            return (args, true);
        }
        77..=79 => with("PUBSUB", with("NUMSUB", names(rng, CHANNELS, 0))),
        80..=81 => with("PUBSUB", with("SHARDNUMSUB", names(rng, CHANNELS, 0))),
        82..=83 => vec![b("PUBSUB"), b("NUMPAT")],
        84 => vec![b("PUBSUB"), b(rng.pick(&["HELP", "nosuch", "NUMPAT x"]))],
        85..=87 => {
            if rng.chance(50) {
                vec![b("PING")]
            } else {
                vec![b("PING"), b(rng.pick(MESSAGES))]
            }
        }
        88..=89 => vec![b("RESET")],
        90..=94 => match rng.below(5) {
            0 => vec![b("GET"), b("k")],
            1 => vec![b("SET"), b("k"), b(rng.pick(MESSAGES))],
            2 => vec![b("ECHO"), b("e")],
            3 => vec![b("DBSIZE")],
            _ => vec![b("PUBSUB"), b("NUMPAT")],
        },
        _ => match rng.below(4) {
            0 => vec![b("SUBSCRIBE")],
            1 => vec![b("PSUBSCRIBE")],
            2 => vec![b("PUBLISH"), b("a")],
            _ => vec![b("SPUBLISH"), b("a"), b("x"), b("y")],
        },
    };
    (args, false)
}

fn step(rng: &mut Rng) -> Step {
    let conn = rng.below(CONNS);
    if rng.chance(4) {
        // A pipelined MULTI block.
        // Either (un)subscribes or PUBLISHes (dkv runs a transaction's
        // (un)subscribes after its other commands; see the README).
        let publishes = rng.chance(50);
        let mut requests = vec![vec![b("MULTI")]];
        for _ in 0..1 + rng.below(3) {
            let queued = match (publishes, rng.below(3)) {
                (_, 0) => vec![b("SET"), b("k"), b("v")],
                (true, _) => vec![b("PUBLISH"), b(rng.pick(CHANNELS)), b("in-multi")],
                (false, 1) => with("SUBSCRIBE", names(rng, CHANNELS, 1)),
                (false, _) => with("PSUBSCRIBE", names(rng, PATTERNS, 1)),
            };
            requests.push(queued);
        }
        requests.push(vec![b("EXEC")]);
        return Step {
            conn,
            requests,
            sorted_reply: false,
            silent: false,
        };
    }
    let (args, sorted_reply) = command(rng);
    let reset = args[0] == b"RESET";
    let mut requests = vec![args];
    let mut silent = false;
    if reset && rng.chance(50) {
        requests.push(vec![b("HELLO"), b("3")]);
        silent = true;
    }
    Step {
        conn,
        requests,
        sorted_reply,
        silent,
    }
}

// ---- one run -----------------------------------------------------------------------

/// One server's connections.
struct Side {
    conns: Vec<Conn>,
}

impl Side {
    async fn open(addr: SocketAddr) -> Result<Side> {
        let mut conns = Vec::with_capacity(CONNS);
        for i in 0..CONNS {
            let mut conn = Conn::connect(addr).await?;
            if i >= CONNS / 2 {
                conn.send(&[b("HELLO"), b("3")]).await?;
                conn.frame(FRAME_TIMEOUT).await?;
            }
            conns.push(conn);
        }
        Ok(Side { conns })
    }

    /// Carries out `step` and returns what each connection got from it.
    async fn run(&mut self, step: &Step, token: &str) -> Result<Vec<Vec<Vec<u8>>>> {
        let bytes: Vec<u8> = step.requests.iter().flat_map(|r| encode(r)).collect();
        self.conns[step.conn].send_raw(&bytes).await?;
        // The sender first: the others are asked only once its commands
        // were answered (what they got must be there by then).
        let mut got = vec![Vec::new(); CONNS];
        got[step.conn] = sync(&mut self.conns[step.conn], token).await?;
        for (i, conn) in self.conns.iter_mut().enumerate() {
            if i != step.conn {
                got[i] = sync(conn, token).await?;
            }
        }
        Ok(got)
    }
}

fn show(frames: &[Vec<u8>]) -> String {
    frames
        .iter()
        .map(|f| format!("{:?}", String::from_utf8_lossy(f)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn show_requests(requests: &[Vec<Vec<u8>>]) -> String {
    requests
        .iter()
        .map(|r| {
            r.iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

async fn run_seed(seed: u64, steps: usize) -> Result<usize> {
    let (_redis, _) = start_redis().await?;
    let mut redis = Side::open(_redis.addr).await?;
    let mut cluster = Cluster::start(1).await?;
    cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let mut dkv = Side::open(cluster.resp_addr(0)).await?;
    let mut rng = Rng(seed);
    let mut frames = 0;
    for n in 0..steps {
        let step = step(&mut rng);
        let token = format!("sync-{seed}-{n}");
        let mut want = redis.run(&step, &token).await?;
        let mut got = dkv
            .run(&step, &token)
            .await
            .with_context(|| format!("seed {seed} step {n}: {}", show_requests(&step.requests)))?;
        if step.silent {
            continue;
        }
        for (i, (want, got)) in want.iter_mut().zip(got.iter_mut()).enumerate() {
            let sender = i == step.conn;
            *want = canonical(want)
                .with_context(|| format!("seed {seed} step {n} conn {i}: {}", show(want)))?;
            *got = canonical(got)
                .with_context(|| format!("seed {seed} step {n} conn {i}: {}", show(got)))?;
            normalize(want, sender && step.sorted_reply);
            normalize(got, sender && step.sorted_reply);
            frames += want.len();
            if want != got {
                bail!(
                    "seed {seed} step {n}: conn {}'s `{}`: conn {i} got\n  redis: {}\n  dkv:   {}",
                    step.conn,
                    show_requests(&step.requests),
                    show(want),
                    show(got)
                );
            }
        }
    }
    cluster.shutdown();
    Ok(frames)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_matches_redis_server() -> Result<()> {
    if !program_available("redis-server", "--version") {
        println!("SKIPPED: redis-server is not installed (.ci/run installs it)");
        return Ok(());
    }
    let seeds = dkv_integration::rng::env_seeds("PUBSUB_DIFFTEST_SEEDS", "1,2,3,4")?;
    let steps = dkv_integration::rng::env_count("PUBSUB_DIFFTEST_STEPS", 1_500)?;
    let started = Instant::now();
    for seed in seeds {
        let frames = run_seed(seed, steps).await?;
        println!("pubsub difftest seed {seed}: {steps} steps, {frames} frames, 0 differences");
    }
    println!("pubsub difftest: {:?}", started.elapsed());
    Ok(())
}

#[test]
fn normalizing_sorts_only_hash_ordered_runs() {
    let confirm = |name: &str, n: i64| {
        format!(
            "*3\r\n$11\r\nunsubscribe\r\n${}\r\n{name}\r\n:{n}\r\n",
            name.len()
        )
        .into_bytes()
    };
    let mut frames = vec![confirm("b", 1), confirm("a", 0), b("+PONG\r\n")];
    normalize(&mut frames, false);
    assert_eq!(
        frames,
        vec![confirm("a", 1), confirm("b", 0), b("+PONG\r\n")]
    );
    let mut reply = vec![b("*2\r\n$1\r\nz\r\n$1\r\ny\r\n")];
    normalize(&mut reply, true);
    assert_eq!(reply, vec![b("*2\r\n$1\r\ny\r\n$1\r\nz\r\n")]);
}

/// The text of a bulk (`$`) or verbatim (`=`, after its `txt:`) reply.
fn reply_text(frame: &[u8]) -> Result<String> {
    let text = String::from_utf8_lossy(frame);
    let body = match text.split_once("\r\n") {
        Some((head, body)) if head.starts_with('$') => body,
        Some((head, body)) if head.starts_with('=') => body.get(4..).unwrap_or(""),
        _ => bail!("not a text reply: {text:?}"),
    };
    Ok(body.trim_end_matches("\r\n").to_string())
}

/// The CLIENT LIST fields a connection's Pub/Sub and MULTI state shows,
/// of the line with `id=<id>` (the others vary between servers).
fn state_fields(list: &str, id: &str) -> Result<String> {
    let wanted = format!("id={id}");
    let line = list
        .lines()
        .find(|l| l.split(' ').next() == Some(wanted.as_str()))
        .with_context(|| format!("no client {id} in {list:?}"))?;
    const SHOWN: &[&str] = &[
        "flags", "db", "sub", "psub", "ssub", "multi", "cmd", "redir", "resp",
    ];
    Ok(line
        .split(' ')
        .filter(|f| f.split_once('=').is_some_and(|(k, _)| SHOWN.contains(&k)))
        .collect::<Vec<_>>()
        .join(" "))
}

/// The ids CLIENT LIST TYPE `kind` lists, each as its place in `ids`.
fn listed(list: &str, ids: &[String]) -> Vec<usize> {
    list.lines()
        .filter_map(|l| l.split(' ').next()?.strip_prefix("id="))
        .filter_map(|id| ids.iter().position(|i| i == id))
        .collect()
}

/// What CLIENT LIST / CLIENT INFO show of subscribed and transaction
/// connections on the server at `addr`, as lines to compare.
async fn client_states(addr: SocketAddr) -> Result<Vec<String>> {
    let call = |words: &'static str| -> Vec<Vec<u8>> { words.split(' ').map(b).collect() };
    let mut observer = Conn::connect(addr).await?;
    // 0: RESP2 subscriber to 2 channels, 1 pattern, 1 shard channel.
    // 1: RESP3 subscriber (asks CLIENT INFO itself). 2: in MULTI.
    // 3: an idle connection.
    let mut conns = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..4 {
        let mut conn = Conn::connect(addr).await?;
        let id = conn.call(&call("CLIENT ID")).await?;
        ids.push(
            String::from_utf8_lossy(&id)
                .trim_matches([':', '\r', '\n'])
                .to_string(),
        );
        conns.push(conn);
    }
    let mut out = Vec::new();
    conns[0].send(&call("SUBSCRIBE news.uk news.fr")).await?;
    conns[0].send(&call("PSUBSCRIBE news.*")).await?;
    conns[0].send(&call("SSUBSCRIBE orders")).await?;
    for _ in 0..4 {
        conns[0].frame(FRAME_TIMEOUT).await?;
    }
    conns[1].call(&call("HELLO 3")).await?;
    conns[1].send(&call("SUBSCRIBE a")).await?;
    conns[1].send(&call("PSUBSCRIBE a* b*")).await?;
    for _ in 0..3 {
        conns[1].frame(FRAME_TIMEOUT).await?;
    }
    let info = reply_text(&conns[1].call(&call("CLIENT INFO")).await?)?;
    out.push(format!("info: {}", state_fields(&info, &ids[1])?));
    conns[2].call(&call("MULTI")).await?;
    conns[2].call(&call("SET k v")).await?;
    conns[2].call(&call("GET k")).await?;
    let list = reply_text(&observer.call(&call("CLIENT LIST")).await?)?;
    for (i, id) in ids.iter().enumerate() {
        out.push(format!("{i}: {}", state_fields(&list, id)?));
    }
    for kind in ["pubsub", "normal"] {
        let list = reply_text(
            &observer
                .call(&[b("CLIENT"), b("LIST"), b("TYPE"), b(kind)])
                .await?,
        )?;
        out.push(format!("type {kind}: {:?}", listed(&list, &ids)));
    }
    // Leaving one kind at a time, then all: the flag goes with the last.
    conns[0].send(&call("PUNSUBSCRIBE")).await?;
    conns[0].frame(FRAME_TIMEOUT).await?;
    conns[0].send(&call("UNSUBSCRIBE news.uk")).await?;
    conns[0].frame(FRAME_TIMEOUT).await?;
    let list = reply_text(&observer.call(&call("CLIENT LIST")).await?)?;
    out.push(format!("0 after: {}", state_fields(&list, &ids[0])?));
    conns[0].send(&call("UNSUBSCRIBE")).await?;
    conns[0].frame(FRAME_TIMEOUT).await?;
    conns[0].send(&call("SUNSUBSCRIBE")).await?;
    conns[0].frame(FRAME_TIMEOUT).await?;
    conns[2].call(&call("EXEC")).await?;
    let list = reply_text(&observer.call(&call("CLIENT LIST")).await?)?;
    for i in [0, 2] {
        out.push(format!("{i} at last: {}", state_fields(&list, &ids[i])?));
    }
    let killed = observer.call(&call("CLIENT KILL TYPE pubsub")).await?;
    out.push(format!("kill pubsub: {}", String::from_utf8_lossy(&killed)));
    Ok(out)
}

/// CLIENT LIST / CLIENT INFO's `flags` (P, x), `sub`, `psub`, `ssub` and
/// `multi` and the `pubsub` client type, as Redis shows them, for the same
/// connections on a dkv node and on `redis-server`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_list_subscription_fields_match_redis_server() -> Result<()> {
    if !program_available("redis-server", "--version") {
        println!("SKIPPED: redis-server is not installed (.ci/run installs it)");
        return Ok(());
    }
    let (redis, _) = start_redis().await?;
    let want = client_states(redis.addr).await?;
    // The real server's values: the state this test means to compare.
    ensure!(
        want[1].contains(" sub=2 psub=1 ssub=1 ") && want[1].contains("flags=P "),
        "{want:#?}"
    );
    let mut cluster = Cluster::start(1).await?;
    cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let got = client_states(cluster.resp_addr(0)).await?;
    cluster.shutdown();
    for line in &want {
        println!("{line}");
    }
    ensure!(want == got, "redis:\n{want:#?}\ndkv:\n{got:#?}");
    Ok(())
}
