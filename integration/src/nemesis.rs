//! The nemesis: named, seeded fault schedules run against a [`Cluster`] with link
//! proxies. Every action is logged with its time since the run started; the
//! intervals during which a fault was active are kept for the report.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::cluster::Cluster;
use crate::proxy::LinkMode;
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
    /// A random mix of the above.
    Combined,
}

impl Schedule {
    /// Every schedule, in the order `all` runs them.
    pub const ALL: [Schedule; 9] = [
        Schedule::KillLeader,
        Schedule::RandomKill,
        Schedule::PauseLeader,
        Schedule::IsolateLeader,
        Schedule::MajorityMinority,
        Schedule::Bridge,
        Schedule::Flapping,
        Schedule::RollingRestart,
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
                    let was_leader = cluster.find_leader().await == Some(i);
                    self.fault_begins();
                    if was_leader {
                        self.leader_kills.push(ns_since(self.origin));
                    }
                    cluster.kill9(i)?;
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
            Schedule::Combined => {
                let choices = [
                    Schedule::KillLeader,
                    Schedule::RandomKill,
                    Schedule::PauseLeader,
                    Schedule::IsolateLeader,
                    Schedule::MajorityMinority,
                    Schedule::Bridge,
                    Schedule::Flapping,
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
