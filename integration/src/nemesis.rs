//! The nemesis: named, seeded fault schedules run against a [`Cluster`] with link
//! proxies. Every action is logged with its time since the run started; the
//! intervals during which a fault was active are kept for the report.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::cluster::{post_members, Cluster};
use crate::proxy::LinkMode;
use crate::status::Status;
use crate::workload::{ns_since, Rng};

/// A named fault schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Kill the leader (SIGKILL), restart it, repeat.
    KillLeader,
    /// Kill random nodes (at most a minority down at once) and restart them.
    RandomKill,
    /// SIGSTOP the leader for longer than an election timeout, then SIGCONT.
    PauseLeader,
    /// Cut the leader from every other node, then heal.
    IsolateLeader,
    /// Split the cluster into a random minority and majority, then heal.
    MajorityMinority,
    /// One node sees both halves; the halves do not see each other.
    Bridge,
    /// Random partitions switched on and off every few hundred ms.
    Flapping,
    /// Stop (SIGTERM) and restart every node in turn.
    RollingRestart,
    /// Remove a random voter (the leader too) through the admin API while it
    /// keeps running, add it back as a learner, promote it once caught up;
    /// some steps kill the leader right after a change is proposed, some
    /// remove a node while it is dead (see [`Nemesis`]'s membership steps).
    Membership,
    /// A random mix of the above.
    Combined,
}

impl Schedule {
    /// Every schedule, in the order `all` runs them.
    pub const ALL: [Schedule; 10] = [
        Schedule::KillLeader,
        Schedule::RandomKill,
        Schedule::PauseLeader,
        Schedule::IsolateLeader,
        Schedule::MajorityMinority,
        Schedule::Bridge,
        Schedule::Flapping,
        Schedule::RollingRestart,
        Schedule::Membership,
        Schedule::Combined,
    ];

    /// The schedule's name (as `make chaos SCHEDULE=` takes it).
    pub fn name(self) -> &'static str {
        match self {
            Schedule::KillLeader => "kill-leader",
            Schedule::RandomKill => "random-kill",
            Schedule::PauseLeader => "pause-leader",
            Schedule::IsolateLeader => "isolate-leader",
            Schedule::MajorityMinority => "majority-minority",
            Schedule::Bridge => "bridge",
            Schedule::Flapping => "flapping",
            Schedule::RollingRestart => "rolling-restart",
            Schedule::Membership => "membership",
            Schedule::Combined => "combined",
        }
    }

    /// Parse a name.
    ///
    /// # Errors
    /// An unknown name (the error lists the known ones).
    pub fn parse(name: &str) -> Result<Schedule> {
        Schedule::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Schedule::ALL.iter().map(|s| s.name()).collect();
                anyhow::anyhow!(
                    "unknown schedule {name:?}; known: {} (or all)",
                    names.join(", ")
                )
            })
    }

    /// True if the schedule needs the link proxies.
    pub fn needs_proxies(self) -> bool {
        matches!(
            self,
            Schedule::IsolateLeader
                | Schedule::MajorityMinority
                | Schedule::Bridge
                | Schedule::Flapping
                | Schedule::Combined
        )
    }
}

/// How a fault window ends.
#[derive(Debug, Clone, Copy)]
enum Undo {
    /// Heal every link.
    Heal,
    /// SIGCONT the node.
    Resume(usize),
    /// Restart the (killed) node.
    Restart(usize),
}

/// Longest time one membership change may take, refusals and a learner
/// catching up included.
const CHANGE_BUDGET: Duration = Duration::from_secs(60);
/// Most admin calls one membership change makes.
const CHANGE_ATTEMPTS: u32 = 400;
/// Bound on one admin call (the leader answers once the change commits).
const CHANGE_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long every node may take to show the restored membership.
const AGREE_BUDGET: Duration = Duration::from_secs(30);

/// Where a node stands in the membership a leader shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MemberState {
    Absent,
    Learner,
    Voter,
}

fn member_state(s: &Status, id: u64) -> MemberState {
    if s.voters.contains(&id) {
        MemberState::Voter
    } else if s.learners.contains(&id) {
        MemberState::Learner
    } else {
        MemberState::Absent
    }
}

/// What the membership steps did in one run.
#[derive(Debug, Clone, Default)]
pub struct MemberStats {
    /// Membership steps (remove, add back, promote) started.
    pub steps: u64,
    /// Admin calls proposing a change the leader's membership did not hold.
    pub asked: u64,
    /// Calls answered 200 (the change committed).
    pub committed: u64,
    /// Calls refused for a retry (409: not the leader, a change in flight, a
    /// learner catching up).
    pub refused: u64,
    /// Calls with no answer (the node died or timed out): outcome unknown.
    pub unknown: u64,
    /// Of the changes whose leader was killed right after the proposal, how
    /// many the next leader showed as made.
    pub made_despite_kill: u64,
    /// Leader kills right after a proposal.
    pub kills_during_change: u64,
}

impl MemberStats {
    /// One line for the report.
    pub fn summary(&self) -> String {
        format!(
            "{} membership steps: {} changes proposed, {} answered committed, {} refusals retried, \
             {} unknown outcomes; {} leader kills right after a proposal, {} of those changes made anyway",
            self.steps,
            self.asked,
            self.committed,
            self.refused,
            self.unknown,
            self.kills_during_change,
            self.made_despite_kill
        )
    }
}

/// One logged nemesis action.
#[derive(Debug, Clone)]
pub struct Event {
    /// When (ns since the run started).
    pub at: u64,
    /// What happened.
    pub what: String,
}

/// The nemesis for one run.
pub struct Nemesis {
    rng: Rng,
    origin: Instant,
    /// Every action, in order.
    pub events: Vec<Event>,
    /// Intervals (ns) during which a fault was active.
    pub windows: Vec<(u64, u64)>,
    /// Times (ns) at which a leader was SIGKILLed.
    pub leader_kills: Vec<u64>,
    /// What the membership steps did.
    pub members: MemberStats,
    open: Option<u64>,
    quiet: bool,
}

impl Nemesis {
    /// A nemesis seeded with `seed`, timing from `origin`. `quiet` keeps the log
    /// off stderr (it is still kept in `events`).
    pub fn new(seed: u64, origin: Instant, quiet: bool) -> Nemesis {
        Nemesis {
            rng: Rng::new(seed.wrapping_add(0xA5A5)),
            origin,
            events: Vec::new(),
            windows: Vec::new(),
            leader_kills: Vec::new(),
            members: MemberStats::default(),
            open: None,
            quiet,
        }
    }

    fn log(&mut self, what: String) {
        let at = ns_since(self.origin);
        if !self.quiet {
            eprintln!("[nemesis {:>8.3}s] {what}", at as f64 / 1e9);
        }
        self.events.push(Event { at, what });
    }

    fn fault_begins(&mut self) {
        if self.open.is_none() {
            self.open = Some(ns_since(self.origin));
        }
    }

    fn fault_ends(&mut self) {
        if let Some(start) = self.open.take() {
            self.windows.push((start, ns_since(self.origin)));
        }
    }

    async fn sleep(&mut self, d: Duration, until: Instant) {
        let left = until.saturating_duration_since(Instant::now());
        tokio::time::sleep(d.min(left)).await;
    }

    /// One fault window: `apply` starts the fault (returning what to log and how to
    /// undo it); the fault holds for a random time in `hold` (ms), is undone, and
    /// the cluster settles for a random time in `settle` (ms) before the next step.
    async fn fault_window(
        &mut self,
        cluster: &mut Cluster,
        until: Instant,
        apply: impl FnOnce(&mut Cluster) -> Result<(String, Undo)>,
        hold: (u64, u64),
        settle: (u64, u64),
    ) -> Result<()> {
        self.fault_begins();
        let (what, undo) = apply(cluster)?;
        self.log(what);
        let d = self.rng.millis(hold.0, hold.1);
        self.sleep(d, until).await;
        self.end_window(cluster, until, undo, settle).await
    }

    /// Ends a fault window: undo the fault, log it, and let the cluster settle for
    /// a random time in `settle` (ms).
    async fn end_window(
        &mut self,
        cluster: &mut Cluster,
        until: Instant,
        undo: Undo,
        settle: (u64, u64),
    ) -> Result<()> {
        let undone = match undo {
            Undo::Heal => {
                cluster.heal()?;
                "heal".to_string()
            }
            Undo::Resume(i) => {
                cluster.resume(i)?;
                format!("SIGCONT node {i}")
            }
            Undo::Restart(i) => {
                cluster.restart(i).await?;
                format!("restarted node {i}")
            }
        };
        self.fault_ends();
        self.log(undone);
        let d = self.rng.millis(settle.0, settle.1);
        self.sleep(d, until).await;
        Ok(())
    }

    /// SIGKILLs node `i`, noting the time if it led; returns whether it did.
    async fn kill_node(&mut self, cluster: &mut Cluster, i: usize) -> Result<bool> {
        let was_leader = cluster.find_leader().await == Some(i);
        if was_leader {
            self.leader_kills.push(ns_since(self.origin));
        }
        cluster.kill9(i)?;
        Ok(was_leader)
    }

    async fn leader_or_any(&mut self, cluster: &Cluster) -> usize {
        if let Some(l) = cluster.find_leader().await {
            return l;
        }
        let live = cluster.responsive();
        let pick = live[self.rng.below(live.len() as u64) as usize];
        self.log(format!("no leader found; picking node {pick}"));
        pick
    }

    /// Run `schedule` until `until`, then undo every fault (heal, resume, restart).
    ///
    /// # Errors
    /// The cluster lacks proxies for a partition schedule, or a node fails to restart.
    pub async fn run(
        &mut self,
        cluster: &mut Cluster,
        schedule: Schedule,
        until: Instant,
    ) -> Result<()> {
        if schedule.needs_proxies() && cluster.proxies().is_none() {
            bail!(
                "schedule {} needs a cluster with link proxies",
                schedule.name()
            );
        }
        self.log(format!(
            "schedule {} on {} nodes",
            schedule.name(),
            cluster.len()
        ));
        let result = async {
            while Instant::now() + Duration::from_millis(500) < until {
                self.step(cluster, schedule, until).await?;
            }
            Ok::<(), anyhow::Error>(())
        }
        .await;
        let settled = self.settle(cluster).await;
        result.and(settled)
    }

    /// Undo every fault: heal the links, resume paused nodes, restart dead ones.
    ///
    /// # Errors
    /// A node fails to restart.
    pub async fn settle(&mut self, cluster: &mut Cluster) -> Result<()> {
        if cluster.proxies().is_some() {
            cluster.heal()?;
        }
        for i in 0..cluster.len() {
            if cluster.is_paused(i) {
                cluster.resume(i)?;
            }
        }
        let live = cluster.live();
        for i in 0..cluster.len() {
            if !live.contains(&i) {
                cluster.restart(i).await?;
            }
        }
        self.fault_ends();
        self.log("settled: links healed, every node running".into());
        if self.members.steps > 0 {
            self.restore_members(cluster).await?;
            let summary = self.members.summary();
            self.log(summary);
        }
        Ok(())
    }

    async fn step(
        &mut self,
        cluster: &mut Cluster,
        schedule: Schedule,
        until: Instant,
    ) -> Result<()> {
        let n = cluster.len();
        match schedule {
            Schedule::KillLeader => {
                let l = self.leader_or_any(cluster).await;
                self.leader_kills.push(ns_since(self.origin));
                let kill = |c: &mut Cluster| {
                    c.kill9(l)?;
                    Ok((format!("kill -9 leader node {l}"), Undo::Restart(l)))
                };
                self.fault_window(cluster, until, kill, (1000, 2500), (1000, 2000))
                    .await?;
            }
            Schedule::RandomKill => {
                let live = cluster.live();
                let dead: Vec<usize> = (0..n).filter(|i| !live.contains(i)).collect();
                let max_dead = (n - 1) / 2;
                if !dead.is_empty() && (dead.len() >= max_dead || self.rng.below(2) == 0) {
                    let i = dead[self.rng.below(dead.len() as u64) as usize];
                    cluster.restart(i).await?;
                    self.log(format!("restarted node {i}"));
                    if dead.len() == 1 {
                        self.fault_ends();
                    }
                } else {
                    let i = live[self.rng.below(live.len() as u64) as usize];
                    self.fault_begins();
                    let was_leader = self.kill_node(cluster, i).await?;
                    self.log(format!(
                        "kill -9 node {i}{}",
                        if was_leader { " (leader)" } else { "" }
                    ));
                }
                let d = self.rng.millis(500, 2000);
                self.sleep(d, until).await;
            }
            Schedule::PauseLeader => {
                let l = self.leader_or_any(cluster).await;
                let pause = |c: &mut Cluster| {
                    c.pause(l)?;
                    Ok((format!("SIGSTOP leader node {l}"), Undo::Resume(l)))
                };
                self.fault_window(cluster, until, pause, (1000, 2500), (1000, 2000))
                    .await?;
            }
            Schedule::IsolateLeader => {
                let l = self.leader_or_any(cluster).await;
                let isolate = |c: &mut Cluster| {
                    c.isolate(l)?;
                    Ok((format!("isolate leader node {l}"), Undo::Heal))
                };
                self.fault_window(cluster, until, isolate, (1500, 3000), (1000, 2000))
                    .await?;
            }
            Schedule::MajorityMinority => {
                let mut nodes: Vec<usize> = (0..n).collect();
                self.rng.shuffle(&mut nodes);
                let (minority, majority) = nodes.split_at(n / 2);
                let split = |c: &mut Cluster| {
                    c.partition(&[minority, majority])?;
                    let what = format!("partition minority {minority:?} | majority {majority:?}");
                    Ok((what, Undo::Heal))
                };
                self.fault_window(cluster, until, split, (1500, 3000), (1000, 2000))
                    .await?;
            }
            Schedule::Bridge => {
                let mut nodes: Vec<usize> = (0..n).collect();
                self.rng.shuffle(&mut nodes);
                let bridge = nodes[0];
                let rest = &nodes[1..];
                let (a, b) = rest.split_at(rest.len() / 2);
                let cut = |c: &mut Cluster| {
                    c.bridge(bridge, a, b)?;
                    let what = format!(
                        "bridge: node {bridge} sees {a:?} and {b:?}, which do not see each other"
                    );
                    Ok((what, Undo::Heal))
                };
                self.fault_window(cluster, until, cut, (2000, 3500), (1000, 2000))
                    .await?;
            }
            Schedule::Flapping => {
                let flap_until = Instant::now() + self.rng.millis(3000, 5000);
                self.fault_begins();
                let mut flips = 0;
                while Instant::now() < flap_until.min(until) {
                    if flips % 2 == 0 {
                        let mut nodes: Vec<usize> = (0..n).collect();
                        self.rng.shuffle(&mut nodes);
                        let cut = 1 + self.rng.below(n as u64 - 1) as usize;
                        let (a, b) = nodes.split_at(cut);
                        let mode = if self.rng.below(2) == 0 {
                            LinkMode::Drop
                        } else {
                            LinkMode::Blackhole
                        };
                        cluster.partition_with(&[a, b], mode)?;
                        self.log(format!("flap: {a:?} | {b:?} ({mode:?})"));
                    } else {
                        cluster.heal()?;
                        self.log("flap: heal".into());
                    }
                    flips += 1;
                    let d = self.rng.millis(100, 400);
                    self.sleep(d, until).await;
                }
                self.end_window(cluster, until, Undo::Heal, (1000, 2000))
                    .await?;
            }
            Schedule::RollingRestart => {
                for i in 0..n {
                    if Instant::now() + Duration::from_millis(500) >= until {
                        break;
                    }
                    self.fault_begins();
                    let was_leader = cluster.find_leader().await == Some(i);
                    if let Err(e) = cluster.stop(i).await {
                        self.log(format!("SIGTERM node {i} failed: {e:#}"));
                        return Err(e);
                    }
                    self.log(format!(
                        "SIGTERM node {i}{} (exited)",
                        if was_leader { " (leader)" } else { "" }
                    ));
                    cluster.restart(i).await?;
                    self.fault_ends();
                    self.log(format!("restarted node {i}"));
                    let d = self.rng.millis(700, 1500);
                    self.sleep(d, until).await;
                }
            }
            Schedule::Membership => self.membership_step(cluster, until).await?,
            Schedule::Combined => {
                let choices = [
                    Schedule::KillLeader,
                    Schedule::RandomKill,
                    Schedule::PauseLeader,
                    Schedule::IsolateLeader,
                    Schedule::MajorityMinority,
                    Schedule::Bridge,
                    Schedule::Flapping,
                    Schedule::Membership,
                ];
                let pick = choices[self.rng.below(choices.len() as u64) as usize];
                self.log(format!("combined: {}", pick.name()));
                Box::pin(self.step(cluster, pick, until)).await?;
                // Random kills leave nodes down; bring them back before the next pick.
                let live = cluster.live();
                for i in 0..n {
                    if !live.contains(&i) {
                        cluster.restart(i).await?;
                        self.log(format!("restarted node {i}"));
                    }
                }
                self.fault_ends();
            }
        }
        Ok(())
    }
}

/// Membership changes (schedule `membership`). A step takes a random voter
/// X (the leader as likely as any), removes it through the leader's admin
/// API, holds, adds it back as a learner under the same id and promotes it
/// once caught up. X's data directory is never emptied, so coming back under
/// its id is safe (an emptied one must never come back as itself: README,
/// "Membership changes"). While removed, X keeps running on its own disk and
/// its clients keep calling it: they must get errors or correct answers.
///
/// Variants, by the seeded rng: a plain step; the leader killed (`kill -9`)
/// right after one of the three changes is proposed to it, restarted, and
/// the change finished through the next leader according to what that
/// leader's `/status` shows (the change may or may not have committed); X
/// killed first, removed while dead, restarted, re-added.
///
/// Every change is driven the same way ([`Nemesis::drive_member`]): read the
/// membership from the leader, propose the one change that moves X toward
/// the target, retry refusals; bounded by [`CHANGE_BUDGET`] and
/// [`CHANGE_ATTEMPTS`]. Every call and answer goes to the log.
impl Nemesis {
    async fn membership_step(&mut self, cluster: &mut Cluster, until: Instant) -> Result<()> {
        let n = cluster.len();
        let x = self.rng.below(n as u64) as usize;
        let id = cluster.config(x).id;
        self.members.steps += 1;
        self.fault_begins();
        let hold = (1000, 2500);
        match self.rng.below(4) {
            2 => {
                let killed_at = self.rng.below(3);
                self.log(format!(
                    "membership: node {x} (id {id}) out and back, the leader killed after the {} proposal",
                    ["remove", "add", "promote"][killed_at as usize]
                ));
                let targets = [
                    MemberState::Absent,
                    MemberState::Learner,
                    MemberState::Voter,
                ];
                for (k, target) in targets.into_iter().enumerate() {
                    if k as u64 == killed_at {
                        self.kill_leader_during(cluster, x, target, until).await?;
                    } else {
                        self.drive_member(cluster, x, target).await?;
                    }
                    if k == 0 {
                        let d = self.rng.millis(hold.0, hold.1);
                        self.sleep(d, until).await;
                    }
                }
            }
            3 => {
                let was_leader = self.kill_node(cluster, x).await?;
                self.log(format!(
                    "membership: kill -9 node {x} (id {id}){}, then remove it while it is dead",
                    if was_leader { " (leader)" } else { "" }
                ));
                self.drive_member(cluster, x, MemberState::Absent).await?;
                let d = self.rng.millis(hold.0, hold.1);
                self.sleep(d, until).await;
                cluster.restart(x).await?;
                self.log(format!("restarted node {x} (removed, disk intact)"));
                self.drive_member(cluster, x, MemberState::Learner).await?;
                self.drive_member(cluster, x, MemberState::Voter).await?;
            }
            _ => {
                self.log(format!("membership: node {x} (id {id}) out and back"));
                self.drive_member(cluster, x, MemberState::Absent).await?;
                let d = self.rng.millis(hold.0, hold.1);
                self.sleep(d, until).await;
                self.drive_member(cluster, x, MemberState::Learner).await?;
                self.drive_member(cluster, x, MemberState::Voter).await?;
            }
        }
        self.fault_ends();
        let d = self.rng.millis(1000, 2000);
        self.sleep(d, until).await;
        Ok(())
    }

    /// The leader (index and `/status`), waiting for one until `deadline`.
    async fn leader_status(
        &mut self,
        cluster: &Cluster,
        deadline: Instant,
    ) -> Result<(usize, Status)> {
        loop {
            if let Some(l) = cluster.find_leader().await {
                if let Ok(s) = cluster.status(l).await {
                    if s.is_leader() {
                        return Ok((l, s));
                    }
                }
            }
            if Instant::now() >= deadline {
                bail!("no leader within {CHANGE_BUDGET:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The one change that moves node `x` from `now` toward `target`.
    fn change_query(cluster: &Cluster, x: usize, now: MemberState, target: MemberState) -> String {
        let c = cluster.config(x);
        match (now, target) {
            (MemberState::Absent, _) => format!(
                "op=add&id={}&resp={}&http={}",
                c.id, c.resp_addr, c.http_addr
            ),
            (MemberState::Learner, MemberState::Voter) => format!("op=promote&id={}", c.id),
            _ => format!("op=remove&id={}", c.id),
        }
    }

    /// Logs and counts one admin call's answer; true if it was a 400 (a
    /// change that can never be made).
    fn note_answer(&mut self, l: usize, query: &str, answer: &Result<(u16, String)>) -> bool {
        let body = |b: &str| b.trim().chars().take(160).collect::<String>();
        match answer {
            Ok((200, b)) => {
                self.members.committed += 1;
                self.log(format!("node {l} {query}: 200 {}", body(b)));
            }
            Ok((code, b)) => {
                self.members.refused += 1;
                self.log(format!("node {l} {query}: {code} {}", body(b)));
                return *code == 400;
            }
            Err(e) => {
                self.members.unknown += 1;
                self.log(format!("node {l} {query}: no answer: {e:#}"));
            }
        }
        false
    }

    /// Drives node `x` to `target` (absent, learner, voter) through whichever
    /// node leads, acting each round on the membership the leader's `/status`
    /// shows: one change per round, refusals retried every 200 ms. Identical
    /// refusals in a row (a learner catching up) are logged once.
    async fn drive_member(
        &mut self,
        cluster: &Cluster,
        x: usize,
        target: MemberState,
    ) -> Result<()> {
        let id = cluster.config(x).id;
        let token = cluster.admin_token()?;
        let deadline = Instant::now() + CHANGE_BUDGET;
        let mut last_refusal = String::new();
        let mut repeats = 0u32;
        for _ in 0..CHANGE_ATTEMPTS {
            let (l, s) = self.leader_status(cluster, deadline).await?;
            let now = member_state(&s, id);
            if now == target {
                if repeats > 0 {
                    self.log(format!("({repeats} more refusals like the last)"));
                }
                return Ok(());
            }
            let query = Self::change_query(cluster, x, now, target);
            self.members.asked += 1;
            let answer = post_members(
                cluster.operator_addr(l),
                &token,
                &query,
                CHANGE_CALL_TIMEOUT,
            )
            .await;
            let refusal = match &answer {
                Ok((code, b)) if *code != 200 => Some(format!("{code} {b}")),
                _ => None,
            };
            match refusal {
                Some(r) if r == last_refusal => {
                    self.members.refused += 1;
                    repeats += 1;
                }
                _ => {
                    if repeats > 0 {
                        self.log(format!("({repeats} more refusals like the last)"));
                        repeats = 0;
                    }
                    if self.note_answer(l, &query, &answer) {
                        bail!("node {l} refused {query} for good (membership {s:?})");
                    }
                    last_refusal = refusal.unwrap_or_default();
                }
            }
            if !matches!(answer, Ok((200, _))) {
                if Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        bail!(
            "node {x} (id {id}) not made {target:?} within {CHANGE_BUDGET:?} / {CHANGE_ATTEMPTS} calls"
        )
    }

    /// Proposes the change moving node `x` toward `target` to the leader,
    /// kills the leader a few ms later (before or after the change commits),
    /// restarts it, logs what the next leader shows, and finishes the change.
    async fn kill_leader_during(
        &mut self,
        cluster: &mut Cluster,
        x: usize,
        target: MemberState,
        until: Instant,
    ) -> Result<()> {
        let id = cluster.config(x).id;
        let (l, s) = self
            .leader_status(cluster, Instant::now() + CHANGE_BUDGET)
            .await?;
        let now = member_state(&s, id);
        if now != target {
            let query = Self::change_query(cluster, x, now, target);
            let token = cluster.admin_token()?;
            let addr = cluster.operator_addr(l);
            self.members.asked += 1;
            let call = {
                let query = query.clone();
                tokio::spawn(async move {
                    post_members(addr, &token, &query, CHANGE_CALL_TIMEOUT).await
                })
            };
            let delay = self.rng.millis(0, 30);
            tokio::time::sleep(delay).await;
            self.leader_kills.push(ns_since(self.origin));
            self.members.kills_during_change += 1;
            cluster.kill9(l)?;
            self.log(format!(
                "kill -9 leader node {l} {} ms after proposing {query} to it",
                delay.as_millis()
            ));
            let answer = match call.await {
                Ok(answer) => answer,
                Err(e) => Err(anyhow::anyhow!("the call's task failed: {e}")),
            };
            if self.note_answer(l, &query, &answer) {
                bail!("node {l} refused {query} for good (membership {s:?})");
            }
            let d = self.rng.millis(300, 1500);
            self.sleep(d, until).await;
            cluster.restart(l).await?;
            self.log(format!("restarted node {l}"));
            let (l2, s2) = self
                .leader_status(cluster, Instant::now() + CHANGE_BUDGET)
                .await?;
            let after = member_state(&s2, id);
            if after == target {
                self.members.made_despite_kill += 1;
            }
            self.log(format!(
                "leader node {l2} shows node {x} (id {id}) as {after:?}: the change {}",
                if after == target {
                    "was made"
                } else {
                    "was not made; proposing it again"
                }
            ));
        }
        self.drive_member(cluster, x, target).await
    }

    /// Makes every node a voter again and waits until every node shows all
    /// of them as voters and no learners; fails with the membership each
    /// node shows if that does not happen within the budgets.
    async fn restore_members(&mut self, cluster: &mut Cluster) -> Result<()> {
        let n = cluster.len();
        for x in 0..n {
            self.drive_member(cluster, x, MemberState::Voter)
                .await
                .context("restoring the full membership")?;
        }
        let mut all: Vec<u64> = (0..n).map(|i| cluster.config(i).id).collect();
        all.sort_unstable();
        let deadline = Instant::now() + AGREE_BUDGET;
        loop {
            let mut seen = Vec::new();
            let mut agreed = true;
            for i in 0..n {
                match cluster.status(i).await {
                    Ok(s) => {
                        agreed &= s.voters == all && s.learners.is_empty();
                        seen.push(format!(
                            "node {i}: voters {:?} learners {:?}",
                            s.voters, s.learners
                        ));
                    }
                    Err(e) => {
                        agreed = false;
                        seen.push(format!("node {i}: {e:#}"));
                    }
                }
            }
            if agreed {
                self.log(format!(
                    "membership restored: every node shows voters {all:?}"
                ));
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "the full membership (voters {all:?}) was not restored within {AGREE_BUDGET:?}; seen: {}",
                    seen.join("; ")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
