//! The simulator's tests: the CI seed range (split into chunks so nextest runs
//! them in parallel), replay of one seed, a seed range from the environment,
//! determinism, and the rule-break tests showing each checker has teeth.

use super::*;

/// Seeds CI runs (in [`CI_CHUNKS`] tests of equal size).
pub(super) const CI_SEEDS: u64 = 2_000;
/// Chaos steps per CI seed.
pub(super) const CI_STEPS: u64 = 3_000;
/// Number of CI chunk tests below.
const CI_CHUNKS: u64 = 8;

pub(super) fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, got {v:?}"))
    })
}

/// Runs `seeds` and returns the failures.
pub(super) fn run_range(seeds: std::ops::Range<u64>, opts: Options) -> Vec<Failure> {
    seeds.filter_map(|seed| run(seed, opts).err()).collect()
}

fn ci_chunk(chunk: u64) {
    let per_chunk = CI_SEEDS / CI_CHUNKS;
    let start = chunk * per_chunk;
    let opts = Options {
        steps: CI_STEPS,
        ..Options::default()
    };
    let failures = run_range(start..start + per_chunk, opts);
    let report: Vec<String> = failures.iter().map(ToString::to_string).collect();
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        report.join("\n")
    );
}

#[test]
fn ci_seeds_0() {
    ci_chunk(0);
}
#[test]
fn ci_seeds_1() {
    ci_chunk(1);
}
#[test]
fn ci_seeds_2() {
    ci_chunk(2);
}
#[test]
fn ci_seeds_3() {
    ci_chunk(3);
}
#[test]
fn ci_seeds_4() {
    ci_chunk(4);
}
#[test]
fn ci_seeds_5() {
    ci_chunk(5);
}
#[test]
fn ci_seeds_6() {
    ci_chunk(6);
}
#[test]
fn ci_seeds_7() {
    ci_chunk(7);
}

/// Seeds outside CI's range that once failed, kept passing after their
/// fix: 20503 (of the 25,000-seed run in session 16) stopped a node for
/// good while it was still a learner, its removal lost with a deposed
/// leader; the liveness check then waited for it forever.
#[test]
fn seeds_found_failing_stay_fixed() {
    for seed in [20_503] {
        if let Err(failure) = run(seed, Options::default()) {
            panic!("{failure}");
        }
    }
}

#[test]
fn same_seed_replays_bit_for_bit() {
    let opts = Options {
        steps: 1_000,
        ..Options::default()
    };
    for seed in [3, 4] {
        let a = run(seed, opts).expect("passes");
        let b = run(seed, opts).expect("passes");
        assert_eq!(a, b, "seed {seed}");
        assert!(a.ops > 50 && a.acked_writes > 10, "{a:?}");
    }
    let c = run(5, opts).expect("passes");
    assert_ne!(run(3, opts).expect("passes").trace_hash, c.trace_hash);
}

/// The random schedule reaches the §7, §3.10 and ch. 4 paths: logs are
/// compacted, lagging followers install snapshots from the leader, restarts
/// restore from a snapshot, leadership transfers are requested, and the
/// membership changes (learners added, promoted, members removed, the
/// leader too, removed nodes stopped and replaced by fresh ones).
#[test]
fn schedules_exercise_snapshots_and_transfers() {
    let opts = Options {
        steps: 1_000,
        ..Options::default()
    };
    let mut total = PathStats::default();
    for seed in 0..16 {
        let s = run(seed, opts).expect("passes").paths;
        total.taken += s.taken;
        total.installed += s.installed;
        total.restored += s.restored;
        total.transfers += s.transfers;
        total.timeout_now_sent += s.timeout_now_sent;
        total.membership_changes += s.membership_changes;
        total.leader_removals += s.leader_removals;
        total.retired += s.retired;
        total.replacements += s.replacements;
    }
    println!("{total:?}");
    assert!(
        total.taken > 0 && total.installed > 0 && total.restored > 0 && total.timeout_now_sent > 0,
        "{total:?}"
    );
    assert!(
        total.membership_changes > 0
            && total.leader_removals > 0
            && total.retired > 0
            && total.replacements > 0,
        "{total:?}"
    );
}
