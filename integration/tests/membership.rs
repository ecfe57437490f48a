//! Membership changes on real processes, the way an operator makes them
//! (`dkv-cli member ...`, `dkv-server --join`), under write load:
//!
//! 1. a 3-node cluster grows to 5: node 4 is added as a learner with
//!    `dkv-cli member add --learner` and started with `--join`; node 5 adds
//!    itself with `--join`; both are promoted once caught up;
//! 2. a follower dies (`kill -9`) and its data directory is emptied: started
//!    again as itself it is refused; it is removed, and a new node 6 joins
//!    and is promoted in its place;
//! 3. the cluster shrinks back to 3, the leader last: asked to remove
//!    itself, it hands leadership to the most caught-up voter, and the new
//!    leader commits the removal (`dkv-cli` retries there);
//! 4. for comparison, the leader is killed: one election.
//!
//! Writers keep writing to whichever live member answers. At the end every
//! write acknowledged at any point is read back with its value, and every
//! node still in the cluster agrees on the membership. The longest gap
//! between two acknowledged writes in each phase is printed beside the
//! election's (not asserted: tests do not assert timings); the writers must
//! have made progress in every phase.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use dkv_integration::cluster::Cluster;
use dkv_integration::external::run_bounded;

const ELECTION_BUDGET: Duration = Duration::from_secs(20);
/// How long a membership change may take (a learner catching up included).
const CHANGE_BUDGET: Duration = Duration::from_secs(60);
/// Writers, each writing its own keys.
const WRITERS: usize = 4;
/// Most writes one writer makes.
const MAX_WRITES_PER_WRITER: u64 = 200_000;
/// One SET's longest wait.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the writers share: where to write, what was acknowledged.
struct Load {
    targets: Mutex<Vec<SocketAddr>>,
    acked: Mutex<Vec<(String, u64)>>,
    last_ack: Mutex<Instant>,
    /// The phase the writers are in, and the longest gap between two
    /// acknowledgements ending in each phase, in order.
    phase: Mutex<usize>,
    gaps: Mutex<Vec<(String, Duration)>>,
    count: AtomicU64,
    stop: AtomicBool,
}

impl Load {
    fn note_ack(&self, key: String, value: u64) {
        let now = Instant::now();
        if let Ok(mut last) = self.last_ack.lock() {
            let gap = now.duration_since(*last);
            let phase = self.phase.lock().map_or(0, |p| *p);
            if let Ok(mut gaps) = self.gaps.lock() {
                if let Some((_, longest)) = gaps.get_mut(phase) {
                    *longest = (*longest).max(gap);
                }
            }
            *last = now;
        }
        if let Ok(mut acked) = self.acked.lock() {
            acked.push((key, value));
        }
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Gaps ending from now on count towards `name`.
    fn enter(&self, name: &str) {
        if let (Ok(mut gaps), Ok(mut phase)) = (self.gaps.lock(), self.phase.lock()) {
            gaps.push((name.to_string(), Duration::ZERO));
            *phase = gaps.len() - 1;
        }
    }

    fn target(&self, turn: usize) -> Option<SocketAddr> {
        let targets = self.targets.lock().ok()?;
        (!targets.is_empty()).then(|| targets[turn % targets.len()])
    }
}

/// Writes `m{w}:{n}` = n until told to stop, moving to another member on
/// any error. Only an `OK` counts as acknowledged.
async fn writer(w: usize, load: Arc<Load>) {
    let mut turn = w;
    let mut conn = None;
    for n in 0..MAX_WRITES_PER_WRITER {
        if load.stop.load(Ordering::Relaxed) {
            return;
        }
        if conn.is_none() {
            let Some(addr) = load.target(turn) else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            conn = dkv_integration::client::connect(addr).await.ok();
            if conn.is_none() {
                turn += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let key = format!("m{w}:{n}");
        let mut set = redis::cmd("SET");
        set.arg(&key).arg(n);
        match tokio::time::timeout(WRITE_TIMEOUT, set.query_async::<String>(c)).await {
            Ok(Ok(reply)) if reply == "OK" => load.note_ack(key, n),
            _ => {
                // Refused, unknown outcome or a dead node: try another member.
                conn = None;
                turn += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Runs `dkv-cli member ARGS` against the operator ports of `nodes`.
async fn member(cluster: &Cluster, nodes: &[usize], args: &[&str]) -> Result<String> {
    let endpoints: Vec<String> = nodes
        .iter()
        .map(|&i| cluster.operator_addr(i).to_string())
        .collect();
    let mut cli = std::process::Command::new(dkv_integration::process::cli_binary()?);
    cli.arg("member")
        .args(args)
        .arg("--endpoints")
        .arg(endpoints.join(","));
    if args.first() != Some(&"list") {
        cli.arg("--admin-token-file")
            .arg(cluster.admin_token_path())
            .arg("--timeout-ms")
            .arg(CHANGE_BUDGET.as_millis().to_string());
    }
    let what = format!("dkv-cli member {}", args.join(" "));
    run_bounded(cli, &what, CHANGE_BUDGET + Duration::from_secs(30)).await
}

/// Runs one command on node `i` and returns its text reply (INFO, CLUSTER
/// NODES).
async fn text_reply(cluster: &Cluster, i: usize, args: &[&str]) -> Result<String> {
    let mut conn = cluster.client(i).await?;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    let text: String = cmd.query_async(&mut conn).await.context("text reply")?;
    Ok(text)
}

/// What INFO raft and CLUSTER NODES on node `i` say of the members: the
/// `role=` of each `raft_memberN` line in order, the `raft_learners` count,
/// and how many nodes CLUSTER NODES lists.
async fn shown_members(cluster: &Cluster, i: usize) -> Result<(Vec<String>, String, usize)> {
    let info = text_reply(cluster, i, &["INFO", "raft"]).await?;
    let roles = info
        .lines()
        .filter(|l| l.starts_with("raft_member"))
        .filter_map(|l| l.split(",role=").nth(1))
        .filter_map(|rest| rest.split(',').next())
        .map(str::to_string)
        .collect();
    let learners = info
        .lines()
        .find_map(|l| l.strip_prefix("raft_learners:"))
        .unwrap_or("missing")
        .trim()
        .to_string();
    let nodes = text_reply(cluster, i, &["CLUSTER", "NODES"]).await?;
    Ok((roles, learners, nodes.lines().count()))
}

/// Waits until every node in `nodes` shows `voters` and `learners` as the
/// membership in effect, and all name the same leader, one of them; returns
/// the leader's index.
async fn wait_membership(
    cluster: &mut Cluster,
    nodes: &[usize],
    voters: &[u64],
    learners: &[u64],
) -> Result<usize> {
    let deadline = Instant::now() + CHANGE_BUDGET;
    loop {
        let mut last = Vec::new();
        let mut statuses = Vec::new();
        for &i in nodes {
            match cluster.status(i).await {
                Ok(s) => {
                    last.push(format!("node {i}: {s:?}"));
                    statuses.push((i, s));
                }
                Err(e) => last.push(format!("node {i}: {e:#}")),
            }
        }
        let leader = statuses
            .iter()
            .find(|(_, s)| s.is_leader())
            .map(|(i, s)| (*i, s.id));
        let agreed = statuses.len() == nodes.len()
            && statuses.iter().all(|(_, s)| {
                s.voters == voters && s.learners == learners && s.leader == leader.map(|l| l.1)
            });
        if let (true, Some((leader, _))) = (agreed, leader) {
            return Ok(leader);
        }
        if Instant::now() >= deadline {
            bail!(
                "nodes {nodes:?} did not agree on voters {voters:?} learners {learners:?} \
                 within {CHANGE_BUDGET:?}:\n{}",
                last.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn set_targets(load: &Load, cluster: &Cluster, nodes: &[usize]) {
    if let Ok(mut targets) = load.targets.lock() {
        *targets = nodes.iter().map(|&i| cluster.resp_addr(i)).collect();
    }
}

/// Waits until the writers have acknowledged `more` writes beyond now.
async fn progress(load: &Load, more: u64, phase: &str) -> Result<()> {
    let start = load.count.load(Ordering::Relaxed);
    let deadline = Instant::now() + CHANGE_BUDGET;
    while load.count.load(Ordering::Relaxed) < start + more {
        ensure!(
            Instant::now() < deadline,
            "{phase}: the writers made no progress ({} acknowledged writes)",
            load.count.load(Ordering::Relaxed) - start
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grow_replace_a_dead_member_and_shrink_under_write_load() -> Result<()> {
    let mut cluster = Cluster::start(3).await?;
    cluster.wait_for_leader(ELECTION_BUDGET).await?;
    let load = Arc::new(Load {
        targets: Mutex::new(Vec::new()),
        acked: Mutex::new(Vec::new()),
        last_ack: Mutex::new(Instant::now()),
        phase: Mutex::new(0),
        gaps: Mutex::new(vec![("warm-up".to_string(), Duration::ZERO)]),
        count: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    set_targets(&load, &cluster, &[0, 1, 2]);
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(writer(w, load.clone())))
        .collect();
    progress(&load, 200, "warm-up").await?;

    // 1. Grow to 5. Node 4: added by the operator, then started with --join.
    load.enter("grow to 5 (two learners added, promoted)");
    let four = cluster.add_node()?;
    let (resp4, http4) = (cluster.resp_addr(four), cluster.http_addr(four));
    let printed = member(
        &cluster,
        &[0, 1, 2],
        &[
            "add",
            "4",
            "--resp",
            &resp4.to_string(),
            "--http",
            &http4.to_string(),
            "--learner",
        ],
    )
    .await?;
    ensure!(printed.contains("added as a learner"), "add 4: {printed}");
    let leader = cluster.wait_for_leader(ELECTION_BUDGET).await?;
    let seed = cluster.operator_addr(leader).to_string();
    cluster
        .spawn_with(four, &["--join".to_string(), seed.clone()])
        .await?;
    // Node 5 adds itself through the seed (the leader's operator port).
    let five = cluster.add_node()?;
    cluster
        .spawn_with(five, &["--join".to_string(), seed])
        .await?;
    wait_membership(&mut cluster, &[0, 1, 2, 3, 4], &[1, 2, 3], &[4, 5]).await?;
    // What the operator promotes on: each learner's match index.
    let listed = member(&cluster, &[0, 1, 2, 3, 4], &["list"]).await?;
    let learner_matches: Vec<&str> = listed
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("learner"))
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    ensure!(
        learner_matches.len() == 2 && learner_matches.iter().all(|m| m.parse::<u64>().is_ok()),
        "member list must show both learners' match index: {listed}"
    );
    // INFO and the cluster view (learners are replicas) follow the change.
    let shown = shown_members(&cluster, 3).await?;
    ensure!(
        shown
            == (
                ["voter", "voter", "voter", "learner", "learner"]
                    .map(String::from)
                    .to_vec(),
                "2".to_string(),
                5
            ),
        "INFO raft / CLUSTER NODES on node 4 with two learners: {shown:?}"
    );
    member(&cluster, &[0, 1, 2], &["promote", "4"]).await?;
    member(&cluster, &[0, 1, 2], &["promote", "5"]).await?;
    let leader = wait_membership(&mut cluster, &[0, 1, 2, 3, 4], &[1, 2, 3, 4, 5], &[]).await?;
    set_targets(&load, &cluster, &[0, 1, 2, 3, 4]);
    progress(&load, 200, "after growing to 5").await?;
    let listed = member(&cluster, &[0, 1, 2, 3, 4], &["list"]).await?;
    ensure!(
        listed.matches("voter").count() >= 5,
        "member list after growing: {listed}"
    );

    // 2. A follower dies with its disk.
    load.enter("kill -9 a follower, empty its disk, refuse its restart");
    let dead = (0..5).find(|&i| i != leader).context("a follower")?;
    let dead_id = cluster.config(dead).id;
    cluster.kill9(dead)?;
    cluster.wipe_data(dead)?;
    let alive: Vec<usize> = (0..5).filter(|&i| i != dead).collect();
    set_targets(&load, &cluster, &alive);
    progress(&load, 100, "with a dead member").await?;
    let (status, log) = cluster
        .start_expecting_exit(dead, Duration::from_secs(30))
        .await?;
    ensure!(
        !status.success() && log.contains("must not rejoin under its old identity"),
        "an emptied member started as itself must be refused; exit {status}, log:\n{log}"
    );
    load.enter("remove the dead member, add node 6 in its place");
    member(&cluster, &alive, &["remove", &dead_id.to_string()]).await?;
    let mut voters: Vec<u64> = alive.iter().map(|&i| cluster.config(i).id).collect();
    wait_membership(&mut cluster, &alive, &voters, &[]).await?;
    let six = cluster.add_node()?;
    let leader = cluster.wait_for_leader(ELECTION_BUDGET).await?;
    let seed = cluster.operator_addr(leader).to_string();
    cluster
        .spawn_with(six, &["--join".to_string(), seed])
        .await?;
    member(&cluster, &alive, &["promote", "6"]).await?;
    let mut members: Vec<usize> = alive.iter().copied().chain([six]).collect();
    voters.push(6);
    wait_membership(&mut cluster, &members, &voters, &[]).await?;
    set_targets(&load, &cluster, &members);
    progress(&load, 200, "after replacing the dead member").await?;

    // 3. Shrink to 3: a follower first, then the leader itself.
    let leader = cluster.wait_for_leader(ELECTION_BUDGET).await?;
    let follower = *members
        .iter()
        .find(|&&i| i != leader)
        .context("a follower")?;
    for gone in [follower, leader] {
        let id = cluster.config(gone).id;
        load.enter(&format!(
            "remove node {id} ({})",
            if gone == leader {
                "the leader"
            } else {
                "a follower"
            }
        ));
        member(&cluster, &members, &["remove", &id.to_string()]).await?;
        members.retain(|&i| i != gone);
        voters.retain(|&v| v != id);
        set_targets(&load, &cluster, &members);
        wait_membership(&mut cluster, &members, &voters, &[]).await?;
        // The removed node got the entry that removes it: the leader kept it
        // as a peer until the removal committed.
        let deadline = Instant::now() + CHANGE_BUDGET;
        loop {
            let seen = cluster.status(gone).await?;
            if seen.voters == voters {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "removed node {id} never learnt its removal: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        cluster.stop(gone).await?;
        progress(&load, 100, &format!("after removing node {id}")).await?;
    }
    ensure!(members.len() == 3, "shrunk to {members:?}");
    let shown = shown_members(&cluster, members[0]).await?;
    ensure!(
        shown == (vec!["voter".to_string(); 3], "0".to_string(), 3),
        "INFO raft / CLUSTER NODES after shrinking to 3: {shown:?}"
    );
    let new_leader = cluster.wait_for_leader(ELECTION_BUDGET).await?;
    ensure!(new_leader != leader, "the removed leader still leads");

    // For comparison, in the same run: one election, the leader killed.
    load.enter("kill -9 the leader (one election, for comparison)");
    cluster.kill9(new_leader)?;
    progress(&load, 100, "after killing the leader").await?;
    let new_leader = cluster.wait_for_leader(ELECTION_BUDGET).await?;

    // Every acknowledged write is there.
    load.stop.store(true, Ordering::Relaxed);
    for w in writers {
        let _ = tokio::time::timeout(Duration::from_secs(30), w).await;
    }
    let acked = load
        .acked
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    let mut conn = cluster.client(new_leader).await?;
    for chunk in acked.chunks(500) {
        let keys: Vec<&str> = chunk.iter().map(|(k, _)| k.as_str()).collect();
        let values: Vec<Option<u64>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .context("MGET")?;
        for ((key, want), got) in chunk.iter().zip(values) {
            ensure!(
                got == Some(*want),
                "acknowledged write {key} = {want} reads back as {got:?}"
            );
        }
    }
    let gaps = load
        .gaps
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    eprintln!(
        "membership: {} acknowledged writes, all read back; longest gap between two \
         acknowledgements, by phase:",
        acked.len()
    );
    for (phase, gap) in &gaps {
        eprintln!("  {:>6} ms  {phase}", gap.as_millis());
    }
    cluster.shutdown();
    Ok(())
}
