//! Issue 12, must-show 1, second half: a process that acts as a cluster
//! member (it sends the peer headers and speaks the real wire encoding of
//! `dkv::transport`) sends each attack a faulty or compromised member could,
//! against a 3-node cluster. Every attack is checked by its effect: the
//! leader, every term, the data and the snapshot directories are unchanged,
//! no node crashed, every node still serves; and after a full restart every
//! node starts and still holds the data.
//!
//! The forger claims to be a member that is not the leader (with mutual TLS
//! a member can only speak in its own name). On a build without the checks
//! of `raft/validate.rs` and `node/validate.rs` these attacks elect the
//! forger's target, leave every node in term 2^64−1, panic the leader,
//! crash a follower on an entry that does not decode, and delete a key.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use dkv::kv;
use dkv::raft::{Entry, EntryKind, Envelope, LogIndex, Message, NodeId, SnapshotMeta, Term};
use dkv::transport::{self, ForwardReply, SnapshotChunk};
use dkv_integration::{http, process, Cluster};

const RPC_TIMEOUT: Duration = Duration::from_secs(5);
const ELECTION_BUDGET: Duration = Duration::from_secs(20);
/// How long the cluster gets to show an attack's effect (many election
/// timeouts of the harness's config).
const SETTLE: Duration = Duration::from_millis(1500);
const KEYS: usize = 20;

/// `insecure_peer_rpc: true` once the config knows the key (the mTLS work
/// adds it and makes TLS the default); until then peer RPC is plain HTTP
/// anyway, which is the same thing.
fn insecure_peer_rpc_yaml() -> &'static str {
    let probe = "id: 1\ncluster_id: probe\nresp_addr: 127.0.0.1:1\nhttp_addr: 127.0.0.1:2\n\
                 data_dir: /nonexistent\npeers: []\ninsecure_peer_rpc: true\n";
    if dkv::config::Config::parse(probe, Path::new("probe.yaml")).is_ok() {
        "insecure_peer_rpc: true\n"
    } else {
        ""
    }
}

/// The forger: member `from` of cluster `test`.
struct Forger {
    from: u64,
}

impl Forger {
    fn headers(&self) -> [(&'static str, String); 2] {
        [
            (transport::CLUSTER_HEADER, "test".to_string()),
            (transport::FROM_HEADER, self.from.to_string()),
        ]
    }

    async fn post(&self, addr: SocketAddr, path: &str, body: &[u8]) -> Result<http::HttpResponse> {
        let headers = self.headers();
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        http::post(addr, path, &headers, body, RPC_TIMEOUT).await
    }

    /// One Raft message in the forger's name, as `/raft/msg` carries it.
    async fn send(&self, c: &Cluster, to: usize, message: Message) -> Result<u16> {
        let batch = vec![Envelope {
            from: NodeId(self.from),
            to: NodeId(to as u64 + 1),
            message,
        }];
        let r = self
            .post(
                c.http_addr(to),
                transport::MSG_PATH,
                &transport::encode(&batch),
            )
            .await?;
        Ok(r.status)
    }
}

/// What must not change: leader, every term, every value.
#[derive(Debug, PartialEq, Eq)]
struct Picture {
    leader: usize,
    terms: Vec<u64>,
}

async fn picture(c: &Cluster) -> Result<Picture> {
    let mut terms = Vec::new();
    let mut leaders = Vec::new();
    for i in 0..c.len() {
        let s = c
            .status(i)
            .await
            .with_context(|| format!("node {i} does not answer: crashed?"))?;
        terms.push(s.term);
        leaders.push(s.leader);
    }
    let leader = match leaders.first().copied().flatten() {
        Some(l) if leaders.iter().all(|x| *x == Some(l)) => l as usize - 1,
        _ => bail!("nodes disagree on the leader: {leaders:?}"),
    };
    Ok(Picture { leader, terms })
}

async fn check_data(c: &Cluster, node: usize) -> Result<()> {
    let mut conn = c.client(node).await?;
    for k in 0..KEYS {
        let v: Option<String> = redis::cmd("GET")
            .arg(format!("key{k}"))
            .query_async(&mut conn)
            .await
            .with_context(|| format!("GET key{k} on node {node}"))?;
        ensure!(
            v.as_deref() == Some(format!("value{k}").as_str()),
            "node {node}: key{k} = {v:?}"
        );
    }
    Ok(())
}

fn snapshot_files(c: &Cluster, i: usize) -> Result<Vec<String>> {
    let dir = c.config(i).data_dir.join("snapshots");
    let mut names = Vec::new();
    if dir.is_dir() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("list {}", dir.display()))? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// CRC32C (Castagnoli), bit by bit: the payload checksum the receiver
/// compares a stream against.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Whether attack `n` runs: `DKV_HOSTILE_SKIP=1,2` leaves attacks 1 and 2
/// out, to see what each later one does on its own against a build without
/// the checks.
fn runs(n: u32) -> bool {
    std::env::var("DKV_HOSTILE_SKIP").map_or(true, |skip| {
        !skip.split(',').any(|s| s.trim() == n.to_string())
    })
}

/// After an attack: nothing moved, nobody crashed.
async fn unchanged(c: &Cluster, before: &Picture, attack: &str) -> Result<()> {
    tokio::time::sleep(SETTLE).await;
    let after = picture(c)
        .await
        .with_context(|| format!("after {attack}"))?;
    ensure!(
        &after == before,
        "{attack} changed the cluster: before {before:?}, after {after:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_members_messages_change_nothing() -> Result<()> {
    let extra = insecure_peer_rpc_yaml();
    let mut c = Cluster::start_with(3, |n| n.extra_yaml.push_str(extra)).await?;
    let leader = c.wait_for_leader(ELECTION_BUDGET).await?;
    {
        let mut conn = c.client(leader).await?;
        for k in 0..KEYS {
            let _: String = redis::cmd("SET")
                .arg(format!("key{k}"))
                .arg(format!("value{k}"))
                .query_async(&mut conn)
                .await
                .context("SET")?;
        }
    }
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let (target, forger_index) = (followers[0], followers[1]);
    let forger = Forger {
        from: forger_index as u64 + 1,
    };
    for i in 0..3 {
        c.wait_applied(i, c.status(leader).await?.commit_index, ELECTION_BUDGET)
            .await?;
    }
    let before = picture(&c).await?;
    let snapshots_before: Vec<Vec<String>> = (0..3)
        .map(|i| snapshot_files(&c, i))
        .collect::<Result<_>>()?;
    let term = Term(before.terms[leader]);

    // 1. TimeoutNow from a follower: on a build without the check the
    //    target campaigns at once and wins.
    for t in [term, Term(term.0 + 1)].into_iter().filter(|_| runs(1)) {
        forger
            .send(&c, target, Message::TimeoutNow { term: t })
            .await?;
    }
    unchanged(&c, &before, "TimeoutNow from a follower").await?;

    // 2. A heartbeat in term 2^64-1 to every node: without the check every
    //    node adopts it and no election can ever follow.
    for i in (0..3).filter(|_| runs(2)) {
        if i == forger_index {
            continue;
        }
        let heartbeat = Message::AppendEntries {
            term: Term(u64::MAX),
            prev_log_index: LogIndex(0),
            prev_log_term: Term(0),
            entries: Vec::new(),
            leader_commit: LogIndex(0),
            read_ctx: 0,
        };
        forger.send(&c, i, heartbeat).await?;
    }
    unchanged(&c, &before, "max-term heartbeat").await?;

    // 3. AppendEntries at the leader's own term, to the leader: an assertion
    //    killed it.
    let status = c.status(leader).await?;
    let same_term = Message::AppendEntries {
        term,
        prev_log_index: LogIndex(status.last_log_index),
        prev_log_term: term,
        entries: Vec::new(),
        leader_commit: LogIndex(status.commit_index),
        read_ctx: 0,
    };
    if runs(3) {
        forger.send(&c, leader, same_term).await?;
    }
    unchanged(&c, &before, "same-term AppendEntries to the leader").await?;

    // 4. An entry that does not decode, committed at once, to a follower in
    //    the next term: without the check the follower appends, commits,
    //    fails to apply it and stops, at every restart.
    let target_status = c.status(target).await?;
    let last = target_status.last_log_index;
    let garbage = Message::AppendEntries {
        term: Term(term.0 + 1),
        prev_log_index: LogIndex(last),
        prev_log_term: term,
        entries: vec![Entry {
            term: Term(term.0 + 1),
            index: LogIndex(last + 1),
            kind: EntryKind::Normal,
            data: Bytes::from_static(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"),
        }],
        leader_commit: LogIndex(last + 1),
        read_ctx: 0,
    };
    if runs(4) {
        forger.send(&c, target, garbage).await?;
    }
    unchanged(&c, &before, "undecodable entry").await?;

    // 5. Forged forwards of the leader's internal operations: Evict deletes
    //    any key, Expire is the leader's own active expiry.
    let victim = vec![(0u8, Bytes::from_static(b"key0"))];
    let ops = [
        kv::Op::Evict {
            keys: victim.clone(),
        },
        kv::Op::Expire { keys: victim },
    ];
    for op in ops.into_iter().filter(|_| runs(5)) {
        let r = forger
            .post(
                c.http_addr(leader),
                transport::FORWARD_PATH,
                &transport::encode(&vec![op.clone()]),
            )
            .await?;
        ensure!(
            r.status == 200,
            "forward answered {} {:?}",
            r.status,
            r.text()
        );
        let reply: ForwardReply = transport::decode(&r.body).context("ForwardReply")?;
        ensure!(
            matches!(reply, ForwardReply::Failed(_)),
            "forwarded {op:?} was not refused: {reply:?}"
        );
        // The same on the stream followers use: one frame of (id, batch).
        let mut frame = transport::encode(&(9u64, vec![op.clone()])).to_vec();
        let len = u32::try_from(frame.len()).context("frame length")?;
        frame.splice(0..0, len.to_le_bytes());
        let r = forger
            .post(c.http_addr(leader), transport::FORWARD_STREAM_PATH, &frame)
            .await?;
        ensure!(
            r.status == 200,
            "forward stream answered {} {:?}",
            r.status,
            r.text()
        );
        let mut body = bytes::BytesMut::from(&r.body[..]);
        let payload = transport::take_frame(&mut body, usize::MAX)
            .context("reply frame")?
            .context("a whole reply frame")?;
        let replies: (u64, ForwardReply) = transport::decode(&payload).context("reply pair")?;
        ensure!(
            matches!(replies, (9, ForwardReply::Failed(_))) && body.is_empty(),
            "streamed {op:?} was not refused by id: {replies:?}"
        );
    }
    unchanged(&c, &before, "forged forward").await?;

    // 6. A forged snapshot stream (junk with a correct CRC, far ahead of the
    //    log) from a member that is not the leader, then its InstallSnapshot.
    let junk = Bytes::from(vec![0xa5u8; 4096]);
    let meta = SnapshotMeta {
        last_included_index: LogIndex(1_000_000_000),
        last_included_term: term,
        membership: dkv::raft::Membership::voters_only([NodeId(1), NodeId(2), NodeId(3)]),
    };
    let chunks = [
        SnapshotChunk {
            meta: meta.clone(),
            offset: 0,
            data: junk.clone(),
            done: false,
            payload_crc: 0,
        },
        SnapshotChunk {
            meta: meta.clone(),
            offset: junk.len() as u64,
            data: Bytes::new(),
            done: true,
            payload_crc: crc32c(&junk),
        },
    ];
    for chunk in chunks.iter().filter(|_| runs(6)) {
        let r = forger
            .post(
                c.http_addr(target),
                transport::SNAPSHOT_PATH,
                &transport::encode(chunk),
            )
            .await?;
        ensure!(
            r.status == 409,
            "forged snapshot chunk answered {} {:?}",
            r.status,
            r.text()
        );
    }
    if runs(6) {
        forger
            .send(&c, target, Message::InstallSnapshot { term, meta })
            .await?;
    }
    unchanged(&c, &before, "forged snapshot stream").await?;
    for (i, files) in snapshots_before.iter().enumerate() {
        let now = snapshot_files(&c, i)?;
        ensure!(
            &now == files,
            "node {i}'s snapshot directory changed: {files:?} -> {now:?}"
        );
        check_data(&c, i).await?;
    }

    // Liveness: a write through every node, then a full restart.
    for i in 0..3 {
        let mut conn = c.client(i).await?;
        let _: String = redis::cmd("SET")
            .arg(format!("after{i}"))
            .arg("ok")
            .query_async(&mut conn)
            .await
            .with_context(|| format!("SET through node {i} after the attacks"))?;
    }
    for i in 0..3 {
        c.stop(i).await?;
    }
    for i in 0..3 {
        c.restart(i)
            .await
            .with_context(|| format!("node {i} does not start after the attacks"))?;
    }
    c.wait_for_leader(ELECTION_BUDGET).await?;
    for i in 0..3 {
        check_data(&c, i).await?;
    }
    c.shutdown();
    Ok(())
}

/// Identity on disk: a node pointed at another node's data directory, or a
/// node of another cluster pointed at this one's, exits with an error that
/// names the directory, the ids recorded there and the ids configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_of_another_node_or_cluster_refuses_to_start() -> Result<()> {
    let extra = insecure_peer_rpc_yaml();
    let mut c = Cluster::start_with(3, |n| n.extra_yaml.push_str(extra)).await?;
    c.wait_for_leader(ELECTION_BUDGET).await?;
    for i in 0..3 {
        c.stop(i).await?;
    }
    let scratch = tempfile::tempdir()?;
    let bin = process::server_binary()?;
    let node1_dir = c.config(0).data_dir.clone();
    let wrong_node = {
        let mut config = c.config(1).clone();
        config.data_dir = node1_dir.clone();
        config
    };
    let wrong_cluster = {
        let mut config = c.config(0).clone();
        config.cluster_id = "other".to_string();
        config
    };
    for (name, config, must_name) in [
        (
            "node2-on-node1.yaml",
            wrong_node,
            "configured as cluster 'test' node 2",
        ),
        (
            "other-cluster.yaml",
            wrong_cluster,
            "configured as cluster 'other' node 1",
        ),
    ] {
        let path = scratch.path().join(name);
        std::fs::write(&path, config.to_yaml())?;
        let report =
            process::run_until_exit(&bin, &path, scratch.path(), Duration::from_secs(20)).await?;
        ensure!(!report.status.success(), "{name}: the node started");
        let dir = node1_dir.display().to_string();
        for needle in [dir.as_str(), "belongs to cluster 'test' node 1", must_name] {
            ensure!(
                report.stderr.contains(needle),
                "{name}: stderr does not say {needle:?}:\n{}",
                report.stderr
            );
        }
    }
    // The rightful node still starts on it.
    c.restart(0).await?;
    c.shutdown();
    Ok(())
}
