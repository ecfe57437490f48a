//! Storage benchmark (issue 4, must-show 5): fsync'd WAL appends per second
//! and MB/s at batch sizes 1, 16 and 256 (64-byte values, as the cache
//! workload), beside the same disk's raw 4 KiB write+fdatasync rate measured
//! in the same run. Rounds are interleaved (raw, batch 1, 16, 256, raw, ...)
//! and medians reported, because the shared machine is noisy.
//!
//! Run: `make bench-store` (or `cargo bench --bench store`). The data
//! directory is `target/bench-store` unless `DKV_BENCH_DIR` names another (put
//! it on the disk you want to measure). `DKV_BENCH_ROUNDS` and
//! `DKV_BENCH_ROUND_MS` adjust the schedule.
//!
//! "raw" overwrites a file laid out beforehand, one 4 KiB `pwrite` +
//! `fdatasync` per op (fio's default); "raw grow" appends to a growing file.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dkv::raft::{Entry, EntryKind, LogIndex, Term};
use dkv::store::{LogStore, Wal};

const VALUE_BYTES: usize = 64;
const RAW_BLOCK_BYTES: usize = 4096;
const RAW_FILE_BYTES: u64 = 64 * 1024 * 1024;

struct Sample {
    ops_per_s: f64,
    records_per_s: f64,
    mb_per_s: f64,
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn raw_round(path: &Path, grow: bool, budget: Duration) -> std::io::Result<Sample> {
    let file: File = if grow {
        let _ = std::fs::remove_file(path);
        OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(path)?
    } else {
        OpenOptions::new().write(true).open(path)?
    };
    let block = vec![0xa5u8; RAW_BLOCK_BYTES];
    let started = Instant::now();
    let mut ops = 0u64;
    while started.elapsed() < budget {
        let offset = (ops * RAW_BLOCK_BYTES as u64) % RAW_FILE_BYTES;
        file.write_all_at(&block, offset)?;
        file.sync_data()?;
        ops += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(Sample {
        ops_per_s: ops as f64 / secs,
        records_per_s: ops as f64 / secs,
        mb_per_s: (ops * RAW_BLOCK_BYTES as u64) as f64 / secs / 1e6,
    })
}

fn wal_round(
    dir: &Path,
    batch: usize,
    budget: Duration,
) -> Result<Sample, Box<dyn std::error::Error>> {
    let _ = std::fs::remove_dir_all(dir);
    let (mut wal, _) = Wal::open(dir)?;
    let value = Bytes::from(vec![b'v'; VALUE_BYTES]);
    let mut next = 1u64;
    let mut syncs = 0u64;
    let started = Instant::now();
    let bytes_before = wal.stats().bytes_written_total;
    while started.elapsed() < budget {
        let entries: Vec<Entry> = (0..batch as u64)
            .map(|i| Entry {
                term: Term(1),
                index: LogIndex(next + i),
                kind: EntryKind::Normal,
                data: value.clone(),
            })
            .collect();
        next += batch as u64;
        wal.append(&entries)?;
        wal.sync()?;
        syncs += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    let bytes = wal.stats().bytes_written_total - bytes_before;
    Ok(Sample {
        ops_per_s: syncs as f64 / secs,
        records_per_s: (next - 1) as f64 / secs,
        mb_per_s: bytes as f64 / secs / 1e6,
    })
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    if xs.is_empty() {
        return 0.0;
    }
    xs[xs.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // `cargo test --benches` probes harness=false benches
    }
    let root = std::env::var_os("DKV_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/bench-store"));
    std::fs::create_dir_all(&root)?;
    let rounds = env_u64("DKV_BENCH_ROUNDS", 5) as usize;
    let budget = Duration::from_millis(env_u64("DKV_BENCH_ROUND_MS", 1500));

    // Lay out the raw file once (fio does the same before measuring).
    let raw_path = root.join("raw-4k.dat");
    {
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&raw_path)?;
        let chunk = vec![0u8; 1 << 20];
        for i in 0..(RAW_FILE_BYTES / chunk.len() as u64) {
            file.write_all_at(&chunk, i * chunk.len() as u64)?;
        }
        file.sync_all()?;
    }
    let grow_path = root.join("raw-grow.dat");
    let batches = [1usize, 16, 256];
    let names = [
        "raw 4k fdatasync",
        "raw 4k grow",
        "wal batch 1",
        "wal batch 16",
        "wal batch 256",
    ];
    let mut samples: Vec<Vec<Sample>> = (0..names.len()).map(|_| Vec::new()).collect();
    for round in 0..rounds {
        samples[0].push(raw_round(&raw_path, false, budget)?);
        samples[1].push(raw_round(&grow_path, true, budget)?);
        for (k, batch) in batches.iter().enumerate() {
            samples[2 + k].push(wal_round(
                &root.join(format!("wal-b{batch}")),
                *batch,
                budget,
            )?);
        }
        eprintln!("round {}/{rounds} done", round + 1);
    }
    let med = |k: usize, f: fn(&Sample) -> f64| median(samples[k].iter().map(f).collect());
    println!(
        "\nstorage benchmark: dkv WAL on {}, {rounds} interleaved rounds of {budget:?}, medians",
        root.display()
    );
    println!(
        "{:<18} {:>12} {:>14} {:>10}",
        "test", "fsyncs/s", "records/s", "MB/s"
    );
    for (k, name) in names.iter().enumerate() {
        println!(
            "{:<18} {:>12.0} {:>14.0} {:>10.2}",
            name,
            med(k, |s| s.ops_per_s),
            med(k, |s| s.records_per_s),
            med(k, |s| s.mb_per_s)
        );
    }
    let raw = med(0, |s| s.ops_per_s);
    let single = med(2, |s| s.records_per_s);
    let b16 = med(3, |s| s.records_per_s);
    let b256 = med(4, |s| s.records_per_s);
    println!(
        "\nsingle-append / raw fdatasync = {:.2} (target >= 0.9); batch 16 / single = {:.1}x, batch 256 / single = {:.1}x (target >= 10x)",
        single / raw.max(1e-9),
        b16 / single.max(1e-9),
        b256 / single.max(1e-9)
    );
    // Per-round ratios, since the machine's speed drifts between rounds.
    let ratios: Vec<f64> = samples[0]
        .iter()
        .zip(&samples[2])
        .map(|(r, w)| w.records_per_s / r.ops_per_s.max(1e-9))
        .collect();
    println!(
        "single/raw per round: {:?}",
        ratios
            .iter()
            .map(|r| (r * 100.0).round() / 100.0)
            .collect::<Vec<_>>()
    );
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
