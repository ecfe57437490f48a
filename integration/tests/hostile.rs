//! A hostile process on the network (issue 12, must-show 1, the outsider half):
//! it knows the cluster id, every member id and every address, but holds no
//! credential (no certificate from the cluster CA, no admin token).
//!
//! Every attack uses the real wire encoding (`dkv::transport`), so it would work
//! if the credential checks were missing; [`the_same_forged_timeout_now_moves_leadership_without_mtls`]
//! proves that by sending one of them to a cluster running `insecure_peer_rpc`.
//! Each attack is judged by its effect: the leader, every node's term, the
//! data, the snapshot files and liveness are unchanged.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use dkv::raft::{Entry, EntryKind, Envelope, LogIndex, Message, NodeId, SnapshotMeta, Term};
use dkv::transport::{self, FrameBuilder, SnapshotChunk};
use dkv_integration::{http, Cluster, ClusterOptions};
use redis::AsyncCommands;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// The header-read (and TLS handshake) timeout the clusters here run with.
const HEADER_TIMEOUT_MS: u64 = 1_500;
/// Keys written before the attacks.
const KEYS: usize = 60;

/// One way of reaching the peer port without a credential.
#[derive(Clone)]
enum Approach {
    /// Plain HTTP to the peer port.
    Plain,
    /// TLS that trusts the cluster CA but presents no certificate.
    TlsNoCert(Arc<rustls::ClientConfig>),
    /// TLS presenting a certificate for the impersonated member id, signed by a
    /// CA the attacker made.
    TlsForeignCa(Arc<rustls::ClientConfig>),
}

impl Approach {
    fn name(&self) -> &'static str {
        match self {
            Approach::Plain => "plain http",
            Approach::TlsNoCert(_) => "tls without a client certificate",
            Approach::TlsForeignCa(_) => "tls with a certificate from a foreign CA",
        }
    }
}

/// A forged peer request: the route, the member it claims to come from, the body.
struct Forgery {
    what: &'static str,
    path: &'static str,
    from: u64,
    body: Vec<u8>,
}

fn request(path: &str, addr: SocketAddr, from: u64, body: &[u8]) -> Vec<u8> {
    let mut bytes = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         x-dkv-cluster: test\r\nx-dkv-from: {from}\r\n\
         content-type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Sends `bytes` as `approach` says and returns what came back (a status line,
/// or why nothing did). Bounded by [`REPLY_TIMEOUT`].
async fn send(approach: &Approach, addr: SocketAddr, target: u64, bytes: &[u8]) -> String {
    let attempt = async {
        let tcp = TcpStream::connect(addr).await.context("connect")?;
        let mut response = Vec::new();
        match approach {
            Approach::Plain => {
                let mut tcp = tcp;
                tcp.write_all(bytes).await?;
                tcp.read_to_end(&mut response).await?;
            }
            Approach::TlsNoCert(config) | Approach::TlsForeignCa(config) => {
                let connector = tokio_rustls::TlsConnector::from(config.clone());
                let mut tls = connector
                    .connect(dkv::tls::peer_name(NodeId(target)), tcp)
                    .await
                    .context("tls handshake")?;
                tls.write_all(bytes).await?;
                tls.read_to_end(&mut response).await?;
            }
        }
        anyhow::Ok(response)
    };
    match tokio::time::timeout(REPLY_TIMEOUT, attempt).await {
        Err(_) => "no reply within the timeout".to_string(),
        Ok(Err(e)) => format!("refused: {e:#}"),
        Ok(Ok(response)) if response.is_empty() => "connection closed without a reply".to_string(),
        // A TLS record (content type 0x15: alert) answering plain HTTP.
        Ok(Ok(response)) if response[0] == 0x15 => {
            format!("answered with a TLS alert ({} bytes)", response.len())
        }
        Ok(Ok(response)) => String::from_utf8_lossy(&response)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

fn stream_of(envelope: &Envelope) -> Vec<u8> {
    FrameBuilder::new(envelope).finish().to_vec()
}

/// Names and sizes of every file under `dir` (the snapshot files among them).
fn snapshot_files(dir: &Path) -> Result<BTreeMap<PathBuf, u64>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                pending.push(path);
            } else if path.to_string_lossy().contains("snap") {
                files.insert(path, entry.metadata()?.len());
            }
        }
    }
    Ok(files)
}

/// What the attacks must not change.
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    leader: u64,
    terms: Vec<u64>,
    snapshots: Vec<BTreeMap<PathBuf, u64>>,
}

async fn observe(c: &mut Cluster) -> Result<Observed> {
    let leader = c.wait_for_leader(Duration::from_secs(10)).await?;
    let mut terms = Vec::new();
    let mut snapshots = Vec::new();
    for i in 0..c.len() {
        terms.push(c.status(i).await?.term);
        snapshots.push(snapshot_files(&c.dir().join(format!("node{}", i + 1)))?);
    }
    Ok(Observed {
        leader: c.config(leader).id,
        terms,
        snapshots,
    })
}

/// [`observe`] once the nodes have finished the snapshots the writes before
/// the attacks started: no snapshot file half written, and the same files
/// twice in a row 200 ms apart (at most 10 s). A snapshot still being
/// written when "before" is taken would look like a change made by the
/// attacks.
async fn settled(c: &mut Cluster) -> Result<Observed> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut last = observe(c).await?;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = observe(c).await?;
        let writing = now
            .snapshots
            .iter()
            .flat_map(|files| files.keys())
            .any(|path| path.extension().is_some_and(|e| e == "tmp"));
        if (now == last && !writing) || tokio::time::Instant::now() >= deadline {
            return Ok(now);
        }
        last = now;
    }
}

fn attacker_credentials(c: &Cluster, impersonate: u64) -> Result<Vec<Approach>> {
    let ca = c.certs_dir().join(dkv::tls::CA_CERT_FILE);
    let no_cert = dkv::tls::client_config(&ca, None)?;
    // The attacker's own CA, and a certificate from it naming a member.
    let own = c.dir().join("attacker");
    let own_ca = dkv::tls::generate_ca("test", 1)?;
    dkv::tls::write_ca(&own, &own_ca, false)?;
    let forged = dkv::tls::generate_node_cert(&own_ca, NodeId(impersonate), &[], 1)?;
    let (cert, key) = dkv::tls::write_node(&own, NodeId(impersonate), &forged, false)?;
    let foreign = dkv::tls::client_config(&ca, Some((&cert, &key)))?;
    Ok(vec![
        Approach::Plain,
        Approach::TlsNoCert(Arc::new(no_cert)),
        Approach::TlsForeignCa(Arc::new(foreign)),
    ])
}

fn forgeries(leader: u64, follower: u64, term: u64) -> Vec<(Forgery, u64)> {
    let envelope = |from: u64, to: u64, message| Envelope {
        from: NodeId(from),
        to: NodeId(to),
        message,
    };
    let snapshot = SnapshotMeta {
        last_included_index: LogIndex(1_000_000),
        last_included_term: Term(term),
        membership: dkv::raft::Membership::voters_only([NodeId(1), NodeId(2), NodeId(3)]),
    };
    let chunk = SnapshotChunk {
        meta: snapshot.clone(),
        offset: 0,
        data: vec![0xAB; 4096].into(),
        done: false,
        payload_crc: 0,
    };
    let done = SnapshotChunk {
        offset: 4096,
        data: Vec::new().into(),
        done: true,
        ..chunk.clone()
    };
    vec![
        // The leader tells a follower to campaign at once.
        (
            Forgery {
                what: "TimeoutNow to a follower",
                path: transport::STREAM_PATH,
                from: leader,
                body: stream_of(&envelope(
                    leader,
                    follower,
                    Message::TimeoutNow { term: Term(term) },
                )),
            },
            follower,
        ),
        // A heartbeat at the largest term: every node would adopt it.
        (
            Forgery {
                what: "max-term heartbeat",
                path: transport::STREAM_PATH,
                from: leader,
                body: stream_of(&envelope(
                    leader,
                    follower,
                    Message::AppendEntries {
                        term: Term(u64::MAX),
                        prev_log_index: LogIndex(0),
                        prev_log_term: Term(0),
                        entries: vec![],
                        leader_commit: LogIndex(0),
                        read_ctx: 0,
                    },
                )),
            },
            follower,
        ),
        // An AppendEntries at the leader's own term, sent to the leader.
        (
            Forgery {
                what: "same-term AppendEntries to the leader",
                path: transport::STREAM_PATH,
                from: follower,
                body: stream_of(&envelope(
                    follower,
                    leader,
                    Message::AppendEntries {
                        term: Term(term),
                        prev_log_index: LogIndex(0),
                        prev_log_term: Term(0),
                        entries: vec![Entry {
                            term: Term(term),
                            index: LogIndex(1),
                            kind: EntryKind::Normal,
                            data: vec![0xFF; 16].into(),
                        }],
                        leader_commit: LogIndex(1),
                        read_ctx: 0,
                    },
                )),
            },
            leader,
        ),
        // A write forwarded "from a follower" to the leader.
        (
            Forgery {
                what: "forged /raft/forward",
                path: transport::FORWARD_PATH,
                from: follower,
                body: transport::encode(&vec![dkv::kv::Op::Set {
                    key: "forged".into(),
                    value: "by an outsider".into(),
                }])
                .to_vec(),
            },
            leader,
        ),
        // A snapshot stream "from the leader" replacing a follower's state.
        (
            Forgery {
                what: "forged snapshot chunk",
                path: transport::SNAPSHOT_PATH,
                from: leader,
                body: transport::encode(&chunk).to_vec(),
            },
            follower,
        ),
        (
            Forgery {
                what: "forged snapshot end",
                path: transport::SNAPSHOT_PATH,
                from: leader,
                body: transport::encode(&done).to_vec(),
            },
            follower,
        ),
        (
            Forgery {
                what: "forged InstallSnapshot",
                path: transport::STREAM_PATH,
                from: leader,
                body: stream_of(&envelope(
                    leader,
                    follower,
                    Message::InstallSnapshot {
                        term: Term(term),
                        meta: snapshot,
                    },
                )),
            },
            follower,
        ),
    ]
}

fn header_timeout_yaml() -> String {
    format!("http: {{ header_read_timeout_ms: {HEADER_TIMEOUT_MS} }}\n")
}

/// Sends a request's headers one byte every `pause` until the server closes the
/// connection; returns how many bytes it took, or `None` if it sent them all.
async fn slowloris<S>(mut stream: S, bytes: Vec<u8>, pause: Duration) -> Option<usize>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut probe = [0u8; 512];
    for (sent, byte) in bytes.iter().enumerate() {
        if stream.write_all(&[*byte]).await.is_err() {
            return Some(sent);
        }
        // Whatever the server says (a 408, or nothing), EOF or a reset ends it.
        if let Ok(read) = tokio::time::timeout(pause, stream.read(&mut probe)).await {
            match read {
                Ok(0) | Err(_) => return Some(sent + 1),
                Ok(_) => {}
            }
        }
    }
    None
}

/// The outsider tries every attack on an mTLS cluster; nothing it does has an
/// effect, and the cluster keeps serving other clients meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outsider_without_credentials_changes_nothing() -> Result<()> {
    // Slower ticks than the harness default (election timeouts of 0.9 to 1.8 s),
    // so a loaded machine does not cause an election the test would blame on
    // the attacks.
    let mut c = Cluster::start_with(3, |n| {
        n.tick_ms = 30;
        n.raft_extra = "snapshot_every_entries: 20, snapshot_log_growth_percent: 0".to_string();
        n.extra_yaml = header_timeout_yaml();
    })
    .await?;
    let leader = c.wait_for_leader(Duration::from_secs(10)).await?;
    let mut client = c.client(leader).await?;
    for k in 0..KEYS {
        let () = client.set(format!("key{k}"), format!("value{k}")).await?;
    }
    let applied = c.status(leader).await?.commit_index;
    for i in 0..c.len() {
        c.wait_applied(i, applied, Duration::from_secs(10)).await?;
    }
    let before = settled(&mut c).await?;
    ensure!(
        before.snapshots.iter().all(|files| !files.is_empty()),
        "every node should hold a snapshot before the attacks: {before:?}"
    );
    let leader_id = before.leader;
    let follower_id = (1..=3).find(|&id| id != leader_id).context("a follower")?;
    let term = before.terms[leader];
    let addr_of = |id: u64| c.http_addr(id as usize - 1);

    let mut refusals = Vec::new();
    // Leadership transfer through the admin route: no token, a wrong token,
    // on the operator port and (without a certificate) on the peer port.
    for (name, auth) in [("no token", ""), ("wrong token", "Bearer 0123456789abcdef")] {
        let headers: Vec<(&str, &str)> = if auth.is_empty() {
            vec![]
        } else {
            vec![("authorization", auth)]
        };
        let path = format!("/admin/transfer-leader?to={follower_id}");
        let r = http::post(c.operator_addr(leader), &path, &headers, b"", REPLY_TIMEOUT).await?;
        ensure!(
            r.status == 401 || r.status == 403,
            "transfer-leader with {name}: HTTP {} {}",
            r.status,
            r.text()
        );
        refusals.push(format!("transfer-leader, {name}: HTTP {}", r.status));
    }
    for approach in attacker_credentials(&c, follower_id)? {
        let path = format!("/admin/transfer-leader?to={follower_id}");
        let bytes = request(&path, addr_of(leader_id), follower_id, b"");
        let outcome = send(&approach, addr_of(leader_id), leader_id, &bytes).await;
        ensure!(
            !outcome.contains(" 200 "),
            "transfer-leader over {}: {outcome}",
            approach.name()
        );
        refusals.push(format!(
            "transfer-leader over {}: {outcome}",
            approach.name()
        ));
        for (forgery, target) in forgeries(leader_id, follower_id, term) {
            let bytes = request(forgery.path, addr_of(target), forgery.from, &forgery.body);
            let outcome = send(&approach, addr_of(target), target, &bytes).await;
            ensure!(
                !outcome.contains(" 200 ") && !outcome.contains(" 204 "),
                "{} over {} was accepted: {outcome}",
                forgery.what,
                approach.name()
            );
            refusals.push(format!(
                "{} over {}: {outcome}",
                forgery.what,
                approach.name()
            ));
        }
    }

    // Slowloris on the operator port (plain HTTP) and on the peer port (the TLS
    // handshake); meanwhile other clients are served.
    let header = b"GET /status HTTP/1.1\r\nHost: x\r\nUser-Agent: slow\r\nAccept: */*\r\n\r\n";
    let pause = Duration::from_millis(1_000);
    let slow_operator = tokio::spawn(slowloris(
        TcpStream::connect(c.operator_addr(leader)).await?,
        header.to_vec(),
        pause,
    ));
    // On the peer port, the start of a TLS record that announces 512 bytes:
    // the server waits for the rest of the ClientHello.
    let mut hello = vec![0x16, 0x03, 0x01, 0x02, 0x00, 0x01];
    hello.resize(header.len(), 0);
    let slow_peer = tokio::spawn(slowloris(
        TcpStream::connect(c.http_addr(leader)).await?,
        hello,
        pause,
    ));
    for k in 0..5 {
        c.status(leader).await.context("status during slowloris")?;
        let value: Option<String> = client.get(format!("key{k}")).await?;
        ensure!(value.as_deref() == Some(format!("value{k}").as_str()));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (name, handle) in [("operator port", slow_operator), ("peer port", slow_peer)] {
        let closed_after = handle.await?;
        ensure!(
            closed_after.is_some_and(|sent| sent < header.len()),
            "slowloris on the {name}: the server let {:?} of {} header bytes through",
            closed_after,
            header.len()
        );
        refusals.push(format!(
            "slowloris on the {name}: closed after {closed_after:?} bytes"
        ));
    }

    // Give any effect time to show: several election timeouts.
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let after = observe(&mut c).await?;
    ensure!(
        after == before,
        "the attacks changed the cluster:\nbefore {before:?}\nafter  {after:?}\nattempts:\n{}",
        refusals.join("\n")
    );
    for i in 0..c.len() {
        let mut node = c.client(i).await?;
        let forged: Option<String> = node.get("forged").await?;
        ensure!(forged.is_none(), "node {i} has the forged key");
        for k in 0..KEYS {
            let value: Option<String> = redis::cmd("GET")
                .arg(format!("key{k}"))
                .query_async(&mut node)
                .await?;
            ensure!(
                value == Some(format!("value{k}")),
                "node {i} key{k}: {value:?}"
            );
        }
    }
    let () = client.set("after", "the attacks").await?;
    ensure!(c.live().len() == 3, "a node died");
    eprintln!("refused attempts:\n{}", refusals.join("\n"));
    c.shutdown();
    Ok(())
}

/// The control: the forged TimeoutNow of the test above, sent in plain HTTP to
/// a cluster that runs `insecure_peer_rpc`, does move leadership. So the
/// forgeries are well-formed, and the mTLS test fails if the check goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_forged_timeout_now_moves_leadership_without_mtls() -> Result<()> {
    let opts = ClusterOptions {
        insecure_peer_rpc: true,
        ..ClusterOptions::default()
    };
    let mut c = Cluster::start_opts(3, opts, |n| n.extra_yaml = header_timeout_yaml()).await?;
    let before = observe(&mut c).await?;
    let leader_id = before.leader;
    let follower_id = (1..=3).find(|&id| id != leader_id).context("a follower")?;
    let term = before.terms[leader_id as usize - 1];
    let (forgery, target) = forgeries(leader_id, follower_id, term)
        .into_iter()
        .next()
        .context("the TimeoutNow forgery")?;
    let addr = c.http_addr(target as usize - 1);
    let outcome = send(
        &Approach::Plain,
        addr,
        target,
        &request(forgery.path, addr, forgery.from, &forgery.body),
    )
    .await;
    ensure!(outcome.contains(" 204 "), "{}: {outcome}", forgery.what);
    // The follower campaigns at once and wins: bounded wait for its leadership.
    let mut moved = false;
    for _ in 0..100 {
        let status = c.status(target as usize - 1).await?;
        if status.term > term {
            moved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ensure!(
        moved,
        "a forged TimeoutNow on an insecure cluster had no effect"
    );
    c.shutdown();
    Ok(())
}

/// The HTTP bounds: connections past `http.max_connections` are closed at
/// accept while the ones inside it are served, and an operator request with a
/// body over `http.max_admin_body_bytes` gets 413 (the admin token is checked
/// only after the body is bounded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_closed_and_operator_bodies_are_bounded() -> Result<()> {
    const CAP: usize = 4;
    let mut c = Cluster::start_with(1, |n| {
        n.extra_yaml = format!(
            "http: {{ max_connections: {CAP}, max_admin_body_bytes: 64, header_read_timeout_ms: 30000 }}\n"
        );
    })
    .await?;
    c.wait_for_leader(Duration::from_secs(10)).await?;
    let addr = c.operator_addr(0);
    // CAP idle connections hold every slot (the header timeout is long).
    let mut held = Vec::new();
    for _ in 0..CAP {
        held.push(TcpStream::connect(addr).await?);
    }
    // The next connection is accepted by the kernel and closed by the server.
    let mut extra = TcpStream::connect(addr).await?;
    let _ = extra
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(REPLY_TIMEOUT, extra.read(&mut buf)).await;
    ensure!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "a connection past the cap of {CAP} was served: {read:?}"
    );
    // A held connection is still served.
    let mut first = held.remove(0);
    first
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await?;
    let mut reply = Vec::new();
    tokio::time::timeout(REPLY_TIMEOUT, first.read_to_end(&mut reply)).await??;
    ensure!(
        String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 200"),
        "held connection: {}",
        String::from_utf8_lossy(&reply)
    );
    drop(held);
    // Slots free again: ordinary requests work.
    let mut served = false;
    for _ in 0..50 {
        if c.status(0).await.is_ok() {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ensure!(
        served,
        "no slot came free after the held connections closed"
    );
    let token = std::fs::read_to_string(c.admin_token_path())?;
    let bearer = format!("Bearer {}", token.trim());
    let r = http::post(
        addr,
        "/admin/transfer-leader",
        &[("authorization", bearer.as_str())],
        &[b'x'; 1024],
        REPLY_TIMEOUT,
    )
    .await?;
    ensure!(
        r.status == 413,
        "1 KiB admin body: HTTP {} {}",
        r.status,
        r.text()
    );
    c.shutdown();
    Ok(())
}
