//! The seed-driven entry points behind `sim::replay` and `sim::seed_range`.

use super::tests::{env_u64, CI_STEPS};
use super::*;

/// `SIM_SEED=<seed> [SIM_STEPS=<n>] [SIM_LOG=info] cargo test --lib
/// sim::replay -- --nocapture` replays one seed (without `SIM_SEED` it runs
/// seed 0), logging the cores' events at `SIM_LOG`'s level if given.
pub(super) fn replay() {
    if let Ok(filter) = std::env::var("SIM_LOG") {
        // `SIM_LOG=info` prints the cores' role, snapshot and transfer events.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .without_time()
            .try_init();
    }
    let seed = env_u64("SIM_SEED").unwrap_or(0);
    let opts = Options {
        steps: env_u64("SIM_STEPS").unwrap_or(CI_STEPS),
        ..Options::default()
    };
    match run(seed, opts) {
        Ok(summary) => println!("seed {seed}: ok {summary:?}"),
        Err(failure) => panic!("{failure}"),
    }
}

/// `SIM_SEEDS=N SIM_START=K cargo test --release --lib sim::seed_range --
/// --nocapture` (what `make sim` runs); without `SIM_SEEDS` it runs 10 seeds.
pub(super) fn seed_range() {
    let count = env_u64("SIM_SEEDS").unwrap_or(10);
    let start = env_u64("SIM_START").unwrap_or(0);
    let opts = Options {
        steps: env_u64("SIM_STEPS").unwrap_or(CI_STEPS),
        ..Options::default()
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let began = std::time::Instant::now();
    let failures: Vec<Failure> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (start..start + count)
                        .filter(|s| s % threads == t)
                        .filter_map(|seed| run(seed, opts).err())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker"))
            .collect()
    });
    let secs = began.elapsed().as_secs_f64();
    println!(
        "sim: {count} seeds from {start} ({} steps each) in {secs:.1} s on {threads} threads: {:.1} seeds/s, {} failures",
        opts.steps,
        count as f64 / secs,
        failures.len()
    );
    for failure in &failures {
        println!("{failure}");
    }
    assert!(failures.is_empty(), "{} failing seeds", failures.len());
}
