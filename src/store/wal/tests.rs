//! WAL round trips, tail truncation and corruption detection.

use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::raft::{EntryKind, NodeId, SnapshotMeta, Term};
use crate::store::fs::{FaultyFs, RealFs};

fn entry(index: u64, term: u64, data: &str) -> Entry {
    Entry {
        term: Term(term),
        index: LogIndex(index),
        kind: if data.is_empty() {
            EntryKind::Noop
        } else {
            EntryKind::Normal
        },
        data: Bytes::copy_from_slice(data.as_bytes()),
    }
}

fn entries(first: u64, last: u64, term: u64) -> Vec<Entry> {
    (first..=last)
        .map(|i| entry(i, term, &format!("value-{i}")))
        .collect()
}

fn hard_state(term: u64, voted_for: Option<u64>, commit_index: u64) -> HardState {
    HardState {
        term: Term(term),
        voted_for: voted_for.map(NodeId),
        commit_index: LogIndex(commit_index),
    }
}

/// No preallocation: a repaired tail is truncated, so file lengths are exact.
const PLAIN: WalOptions = WalOptions {
    segment_size_bytes: DEFAULT_SEGMENT_SIZE_BYTES,
    preallocate_bytes: 0,
};

fn open_plain(dir: &Path) -> Result<(Wal, InitialState), WalError> {
    Wal::open_with_options(dir, PLAIN)
}

fn open(dir: &Path) -> (Wal, InitialState) {
    open_plain(dir).expect("open wal")
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).expect("metadata").len()
}

/// A fresh directory holding one segment with exactly `bytes`.
fn dir_with_segment(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = segment_path(dir.path(), 1);
    fs::write(&path, bytes).expect("write segment");
    (dir, path)
}

fn state(hard_state: HardState, entries: Vec<Entry>) -> InitialState {
    InitialState {
        snapshot: None,
        hard_state,
        entries,
    }
}

#[test]
fn open_creates_missing_directory_and_starts_empty() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("a").join("b");
    let (wal, initial) = open(&dir);
    assert_eq!(initial, InitialState::default());
    assert_eq!(wal.last_index(), LogIndex(0));
    assert!(segment_path(&dir, 1).exists());
    assert!(dir.join(LOCK_FILE_NAME).exists());
}

#[test]
fn round_trip_restores_hard_state_and_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = entries(1, 3, 1);
    log.push(entry(4, 2, ""));
    {
        let (mut wal, _) = open(dir.path());
        wal.append(&log).expect("append");
        wal.set_hard_state(hard_state(2, Some(3), 2))
            .expect("set hard state");
        wal.sync().expect("sync");
        assert_eq!(wal.last_index(), LogIndex(4));
    }
    let (wal, initial) = open(dir.path());
    assert_eq!(initial, state(hard_state(2, Some(3), 2), log));
    assert_eq!(wal.last_index(), LogIndex(4));
}

#[test]
fn unsynced_writes_are_not_restored() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (mut wal, _) = open(dir.path());
        wal.append(&entries(1, 2, 1)).expect("append");
        wal.sync().expect("sync");
        wal.append(&entries(3, 4, 1)).expect("append");
        wal.set_hard_state(hard_state(5, None, 0))
            .expect("set hard state");
    }
    let (_, initial) = open(dir.path());
    assert_eq!(initial, state(HardState::default(), entries(1, 2, 1)));
}

#[test]
fn suffix_replacement_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (mut wal, _) = open(dir.path());
        wal.append(&entries(1, 5, 1)).expect("append");
        wal.sync().expect("sync");
        // §5.3: a follower replaces a conflicting suffix with the leader's.
        wal.append(&entries(3, 4, 2)).expect("append");
        wal.sync().expect("sync");
        assert_eq!(wal.last_index(), LogIndex(4));
        // Replacing within one unsynced batch works too.
        wal.append(&entries(5, 7, 2)).expect("append");
        wal.append(&entries(6, 6, 3)).expect("append");
        wal.sync().expect("sync");
    }
    let (wal, initial) = open(dir.path());
    let mut expected = entries(1, 2, 1);
    expected.extend(entries(3, 5, 2));
    expected.extend(entries(6, 6, 3));
    assert_eq!(initial.entries, expected);
    assert_eq!(wal.last_index(), LogIndex(6));
}

#[test]
fn many_batches_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut expected_hard_state = HardState::default();
    {
        let (mut wal, _) = open(dir.path());
        for batch in 0..200u64 {
            wal.append(&entries(batch * 5 + 1, batch * 5 + 5, batch / 10 + 1))
                .expect("append");
            expected_hard_state = hard_state(batch / 10 + 1, Some(1), batch * 5);
            wal.set_hard_state(expected_hard_state)
                .expect("set hard state");
            wal.sync().expect("sync");
        }
        assert_eq!(wal.stats().syncs_total, 200);
    }
    let (mut wal, initial) = open(dir.path());
    assert_eq!(initial.hard_state, expected_hard_state);
    assert_eq!(initial.entries.len(), 1000);
    for (position, e) in initial.entries.iter().enumerate() {
        assert_eq!(e.index, LogIndex(position as u64 + 1));
        assert_eq!(e.data, Bytes::from(format!("value-{}", position + 1)));
    }
    // Appending continues where the log ends.
    wal.append(&entries(1001, 1001, 21)).expect("append");
    wal.sync().expect("sync");
    drop(wal);
    let (_, initial) = open(dir.path());
    assert_eq!(initial.entries.len(), 1001);
}

#[test]
fn group_commit_is_one_write_and_one_fsync_per_sync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut wal, _) = open(dir.path());
    for i in 1..=10 {
        wal.append(&entries(i, i, 1)).expect("append");
        wal.set_hard_state(hard_state(1, Some(1), i))
            .expect("set hard state");
    }
    wal.sync().expect("sync");
    assert_eq!(wal.stats().syncs_total, 1);
    // Only the latest hard state is written; nothing buffered means no fsync.
    let written = wal.stats().bytes_written_total;
    assert_eq!(written, file_len(wal.segment_path()));
    wal.sync().expect("sync");
    wal.set_hard_state(hard_state(1, Some(1), 10))
        .expect("set hard state");
    wal.sync().expect("sync");
    assert_eq!(wal.stats().syncs_total, 1);
    assert_eq!(wal.stats().bytes_written_total, written);
}

/// Writes batches, each one sync of exactly one record, and returns the file
/// length and the durable state after each.
fn one_record_per_sync(dir: &Path) -> (PathBuf, Vec<(u64, InitialState)>) {
    let (mut wal, _) = open(dir);
    let mut checkpoints = vec![(0, InitialState::default())];
    let mut current = InitialState::default();
    let mut record = |wal: &mut Wal, current: &InitialState| {
        wal.sync().expect("sync");
        checkpoints.push((file_len(wal.segment_path()), current.clone()));
    };
    wal.append(&entries(1, 3, 1)).expect("append");
    current.entries = entries(1, 3, 1);
    record(&mut wal, &current);
    current.hard_state = hard_state(1, Some(2), 3);
    wal.set_hard_state(current.hard_state)
        .expect("set hard state");
    record(&mut wal, &current);
    wal.append(&entries(4, 6, 1)).expect("append");
    current.entries.extend(entries(4, 6, 1));
    record(&mut wal, &current);
    current.hard_state = hard_state(2, None, 4);
    wal.set_hard_state(current.hard_state)
        .expect("set hard state");
    record(&mut wal, &current);
    // The last record replaces a suffix, so replay must apply a truncation.
    wal.append(&entries(5, 5, 2)).expect("append");
    current.entries.truncate(4);
    current.entries.extend(entries(5, 5, 2));
    record(&mut wal, &current);
    (wal.segment_path().to_path_buf(), checkpoints)
}

#[test]
fn truncation_at_every_offset_of_the_last_records_recovers_the_synced_prefix() {
    let source = tempfile::tempdir().expect("tempdir");
    let (path, checkpoints) = one_record_per_sync(source.path());
    let bytes = fs::read(&path).expect("read segment");
    assert_eq!(
        bytes.len() as u64,
        checkpoints.last().expect("checkpoints").0
    );

    // Every offset inside the last three records (and their boundaries).
    let from = checkpoints[checkpoints.len() - 4].0;
    for cut in from..=bytes.len() as u64 {
        let (boundary, expected) = checkpoints
            .iter()
            .rev()
            .find(|(len, _)| *len <= cut)
            .expect("checkpoint 0 is at offset 0");
        let (dir, segment) = dir_with_segment(&bytes[..cut as usize]);
        let (mut wal, initial) =
            open_plain(dir.path()).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert_eq!(&initial, expected, "cut at {cut}");
        assert_eq!(file_len(&segment), *boundary, "cut at {cut}");
        assert_eq!(
            wal.stats().torn_tail_bytes_truncated,
            cut - boundary,
            "cut at {cut}"
        );
        // The repaired log accepts appends and reopens cleanly.
        let next = wal.last_index().0 + 1;
        wal.append(&entries(next, next, 9)).expect("append");
        wal.sync().expect("sync");
        drop(wal);
        let (wal, reopened) = open(dir.path());
        assert_eq!(reopened.entries.len() as u64, next, "cut at {cut}");
        assert_eq!(wal.stats().torn_tail_bytes_truncated, 0);
    }
}

#[test]
fn zero_filled_tail_is_truncated() {
    let source = tempfile::tempdir().expect("tempdir");
    let (path, checkpoints) = one_record_per_sync(source.path());
    let (len, expected) = checkpoints.last().expect("checkpoints").clone();
    let mut bytes = fs::read(&path).expect("read segment");
    for zero_len in [1usize, 8, 9, 100, 4096, 1 << 20] {
        bytes.truncate(len as usize);
        bytes.resize(len as usize + zero_len, 0);
        let (dir, segment) = dir_with_segment(&bytes);
        let (_, initial) = open(dir.path());
        assert_eq!(initial, expected, "{zero_len} zero bytes");
        assert_eq!(file_len(&segment), len);
    }
}

fn expect_corrupt(dir: &Path) -> (PathBuf, u64, String) {
    match open_plain(dir) {
        Err(WalError::Corrupt {
            path,
            offset,
            reason,
        }) => (path, offset, reason),
        Err(other) => panic!("expected Corrupt, got {other}"),
        Ok((_, initial)) => panic!("expected Corrupt, opened with {initial:?}"),
    }
}

#[test]
fn flipped_bit_in_a_middle_record_is_corrupt_at_its_offset() {
    let source = tempfile::tempdir().expect("tempdir");
    let (path, checkpoints) = one_record_per_sync(source.path());
    let bytes = fs::read(&path).expect("read segment");
    // The third record (entries 4..=6), followed by two valid records.
    let (start, end) = (checkpoints[2].0, checkpoints[3].0);
    for position in start..end {
        let mut damaged = bytes.clone();
        damaged[position as usize] ^= 1 << (position % 8);
        let (dir, segment) = dir_with_segment(&damaged);
        let (bad_path, offset, reason) = expect_corrupt(dir.path());
        assert_eq!(bad_path, segment, "flip at {position}");
        assert_eq!(offset, start, "flip at {position}: {reason}");
        // Nothing was truncated.
        assert_eq!(file_len(&segment), bytes.len() as u64);
    }
}

#[test]
fn flipped_bit_in_the_last_record_truncates_it_as_a_torn_tail() {
    let source = tempfile::tempdir().expect("tempdir");
    let (path, checkpoints) = one_record_per_sync(source.path());
    let bytes = fs::read(&path).expect("read segment");
    let (start, expected) = checkpoints[checkpoints.len() - 2].clone();
    for position in start..bytes.len() as u64 {
        let mut damaged = bytes.clone();
        damaged[position as usize] ^= 1 << (position % 8);
        let (dir, segment) = dir_with_segment(&damaged);
        let (_, initial) =
            open_plain(dir.path()).unwrap_or_else(|e| panic!("flip at {position}: {e}"));
        assert_eq!(initial, expected, "flip at {position}");
        assert_eq!(file_len(&segment), start);
    }
}

#[test]
fn valid_record_of_unknown_kind_is_corrupt_even_at_the_tail() {
    let mut bytes = Vec::new();
    encode_entries_records(&entries(1, 2, 1), &mut bytes).expect("encode");
    let offset = bytes.len() as u64;
    push_record(7, b"from the future", &mut bytes);
    let (dir, _) = dir_with_segment(&bytes);
    let (_, bad_offset, reason) = expect_corrupt(dir.path());
    assert_eq!(bad_offset, offset);
    assert!(reason.contains("unknown record kind 7"), "{reason}");
}

#[test]
fn entries_record_leaving_a_gap_is_corrupt() {
    let mut bytes = Vec::new();
    encode_entries_records(&entries(1, 2, 1), &mut bytes).expect("encode");
    let offset = bytes.len() as u64;
    encode_entries_records(&entries(5, 6, 1), &mut bytes).expect("encode");
    let (dir, _) = dir_with_segment(&bytes);
    let (_, bad_offset, reason) = expect_corrupt(dir.path());
    assert_eq!(bad_offset, offset, "{reason}");
}

#[test]
fn second_open_of_a_locked_directory_is_locked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (wal, _) = open(dir.path());
    match open_plain(dir.path()) {
        Err(WalError::Locked { path }) => assert_eq!(path, dir.path().join(LOCK_FILE_NAME)),
        Err(other) => panic!("expected Locked, got {other}"),
        Ok(_) => panic!("expected Locked, opened twice"),
    }
    drop(wal);
    let _reopened = open(dir.path());
}

fn small_segments() -> WalOptions {
    WalOptions {
        segment_size_bytes: 512,
        preallocate_bytes: 256,
    }
}

#[test]
fn segment_rollover_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut expected_hard_state = HardState::default();
    {
        let (mut wal, _) = Wal::open_with_options(dir.path(), small_segments()).expect("open");
        for batch in 0..40u64 {
            wal.append(&entries(batch * 3 + 1, batch * 3 + 3, 1))
                .expect("append");
            if batch % 7 == 0 {
                expected_hard_state = hard_state(batch + 1, Some(2), batch * 3);
                wal.set_hard_state(expected_hard_state)
                    .expect("set hard state");
            }
            wal.sync().expect("sync");
        }
        assert!(wal.stats().segments_created_total > 3);
    }
    let segments = list_segments(&RealFs, dir.path()).expect("list");
    assert!(segments.len() > 3, "{} segments", segments.len());
    for (position, (seq, path)) in segments.iter().enumerate() {
        assert_eq!(*seq, position as u64 + 1);
        let bytes = fs::read(path).expect("read");
        // A batch is never split, so a segment exceeds the size by < one batch.
        assert!(
            bytes.len() < 1024,
            "{}: {} bytes",
            path.display(),
            bytes.len()
        );
        if *seq > 1 {
            // Every later segment starts with the hard state.
            assert_eq!(bytes[8], KIND_HARD_STATE, "{}", path.display());
        }
    }
    let (mut wal, initial) = Wal::open_with_options(dir.path(), small_segments()).expect("open");
    assert_eq!(initial.hard_state, expected_hard_state);
    assert_eq!(initial.entries, entries(1, 120, 1));
    // Keep writing into the last segment after reopen, replacing a suffix
    // that spans segments.
    wal.append(&entries(50, 52, 2)).expect("append");
    wal.sync().expect("sync");
    drop(wal);
    let (_, initial) = Wal::open_with_options(dir.path(), small_segments()).expect("open");
    let mut expected = entries(1, 49, 1);
    expected.extend(entries(50, 52, 2));
    assert_eq!(initial.entries, expected);
    assert_eq!(initial.hard_state, expected_hard_state);
}

#[test]
fn damaged_tail_of_a_segment_that_is_not_the_last_is_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (mut wal, _) = Wal::open_with_options(dir.path(), small_segments()).expect("open");
        for batch in 0..40u64 {
            wal.append(&entries(batch * 3 + 1, batch * 3 + 3, 1))
                .expect("append");
            wal.sync().expect("sync");
        }
    }
    let segments = list_segments(&RealFs, dir.path()).expect("list");
    assert!(segments.len() >= 3);
    let first = &segments[0].1;
    let len = file_len(first);
    fs::OpenOptions::new()
        .write(true)
        .open(first)
        .and_then(|f| f.set_len(len - 3))
        .expect("truncate");
    let (path, offset, _) = expect_corrupt(dir.path());
    assert_eq!(&path, first);
    assert!(offset < len - 3);
    // Never repaired behind the operator's back.
    assert_eq!(file_len(first), len - 3);
}

#[test]
fn missing_segment_is_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (mut wal, _) = Wal::open_with_options(dir.path(), small_segments()).expect("open");
        for batch in 0..40u64 {
            wal.append(&entries(batch * 3 + 1, batch * 3 + 3, 1))
                .expect("append");
            wal.sync().expect("sync");
        }
    }
    assert!(list_segments(&RealFs, dir.path()).expect("list").len() >= 3);
    fs::remove_file(segment_path(dir.path(), 2)).expect("remove");
    let (path, offset, reason) = expect_corrupt(dir.path());
    assert_eq!(path, segment_path(dir.path(), 3));
    assert_eq!(offset, 0);
    assert!(reason.contains("gap"), "{reason}");
}

#[test]
fn failed_write_poisons_the_wal() {
    let faulty = FaultyFs::new();
    let dir = Path::new("/data");
    let open = || Wal::open_with(faulty.shared(), dir, None, WalOptions::default());
    let (mut wal, _) = open().expect("open");
    wal.append(&entries(1, 1, 1)).expect("append");
    wal.sync().expect("sync");
    // The next write fails as a full or dead disk would.
    faulty.fail_next_write();
    wal.append(&entries(2, 2, 1)).expect("append");
    assert!(matches!(wal.sync(), Err(WalError::Io { .. })));
    assert!(wal.is_poisoned());
    assert!(matches!(wal.sync(), Err(WalError::Poisoned { .. })));
    assert!(matches!(
        wal.append(&entries(3, 3, 1)),
        Err(WalError::Poisoned { .. })
    ));
    assert!(matches!(
        wal.set_hard_state(hard_state(1, None, 0)),
        Err(WalError::Poisoned { .. })
    ));
    assert!(matches!(
        wal.compact(LogIndex(1)),
        Err(WalError::Poisoned { .. })
    ));
    drop(wal);
    faulty.power_cut();
    let (_, initial) = open().expect("reopen");
    assert_eq!(initial.entries, entries(1, 1, 1));
}

#[test]
#[should_panic(expected = "gap")]
fn append_leaving_a_gap_is_a_caller_bug() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut wal, _) = open(dir.path());
    let _ = wal.append(&entries(2, 3, 1));
}

#[test]
fn length_field_is_never_trusted_beyond_the_file() {
    // A header claiming 4 GiB - 1 bytes at the tail is torn, not allocated.
    let mut bytes = Vec::new();
    encode_entries_records(&entries(1, 1, 1), &mut bytes).expect("encode");
    let valid_len = bytes.len() as u64;
    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
    bytes.extend_from_slice(&[0xab; 20]);
    let (dir, segment) = dir_with_segment(&bytes);
    let (_, initial) = open(dir.path());
    assert_eq!(initial.entries, entries(1, 1, 1));
    assert_eq!(file_len(&segment), valid_len);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever follows a valid prefix, open never panics: it truncates back
    /// to the prefix or reports corruption.
    #[test]
    fn arbitrary_bytes_after_a_valid_prefix_never_panic(
        garbage in proptest::collection::vec(any::<u8>(), 0..2048)
    ) {
        let mut bytes = Vec::new();
        encode_hard_state_record(&hard_state(3, Some(1), 2), &mut bytes).expect("encode");
        encode_entries_records(&entries(1, 4, 3), &mut bytes).expect("encode");
        let valid_len = bytes.len() as u64;
        bytes.extend_from_slice(&garbage);
        let (dir, segment) = dir_with_segment(&bytes);
        match open_plain(dir.path()) {
            Ok((_, initial)) => {
                prop_assert_eq!(initial, state(hard_state(3, Some(1), 2), entries(1, 4, 3)));
                prop_assert_eq!(file_len(&segment), valid_len);
            }
            Err(WalError::Corrupt { offset, .. }) => prop_assert!(offset >= valid_len),
            Err(other) => prop_assert!(false, "unexpected error {}", other),
        }
    }

    /// A segment of arbitrary bytes never panics open.
    #[test]
    fn arbitrary_segment_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..1024)
    ) {
        let (dir, _) = dir_with_segment(&bytes);
        let _ = open_plain(dir.path());
    }
}

// ---------------------------------------------------------------------------
// Snapshots, compaction, and crashes through the fault-injecting filesystem

fn snapshot_meta(index: u64, term: u64) -> SnapshotMeta {
    SnapshotMeta {
        last_included_index: LogIndex(index),
        last_included_term: Term(term),
        membership: crate::raft::Membership::voters_only([NodeId(1)]),
    }
}

fn faulty_open(
    faulty: &FaultyFs,
    snapshot: Option<&SnapshotMeta>,
    options: WalOptions,
) -> Result<(Wal, InitialState), WalError> {
    Wal::open_with(faulty.shared(), Path::new("/data"), snapshot, options)
}

/// A WAL in small segments holding entries 1..=120 of term 1, synced in 40
/// batches of three.
fn forty_synced_batches(faulty: &FaultyFs) -> Wal {
    let (mut wal, _) = faulty_open(faulty, None, small_segments()).expect("open");
    for batch in 0..40u64 {
        wal.append(&entries(batch * 3 + 1, batch * 3 + 3, 1))
            .expect("append");
        wal.sync().expect("sync");
    }
    wal
}

#[test]
fn compaction_deletes_covered_segments_and_reopen_continues_after_the_snapshot() {
    let faulty = FaultyFs::new();
    let mut wal = forty_synced_batches(&faulty);
    let before = wal.segment_paths().len();
    assert!(before >= 3, "{before} segments");
    let deleted = wal.compact(LogIndex(60)).expect("compact");
    assert!(deleted > 0);
    assert_eq!(wal.segment_paths().len(), before - deleted);
    // Never the active segment, even when everything is covered.
    wal.compact(LogIndex(1000)).expect("compact all");
    assert_eq!(wal.segment_paths(), vec![wal.segment_path().to_path_buf()]);
    drop(wal);
    faulty.power_cut();
    let snapshot = snapshot_meta(110, 1);
    let (mut wal, initial) =
        faulty_open(&faulty, Some(&snapshot), small_segments()).expect("reopen");
    assert_eq!(initial.snapshot, Some(snapshot.clone()));
    assert_eq!(initial.entries, entries(111, 120, 1));
    assert_eq!(wal.last_index(), LogIndex(120));
    wal.append(&entries(121, 121, 1)).expect("append");
    wal.sync().expect("sync");
    // Without the snapshot the log has a gap at its start: corruption.
    drop(wal);
    assert!(matches!(
        faulty_open(&faulty, None, small_segments()),
        Err(WalError::Corrupt { .. })
    ));
    // A snapshot older than the log's start leaves a gap too.
    assert!(matches!(
        faulty_open(&faulty, Some(&snapshot_meta(50, 1)), small_segments()),
        Err(WalError::Corrupt { .. })
    ));
}

/// Whether the file at `path` is on the faulty disk.
fn on_disk(faulty: &FaultyFs, path: &Path) -> bool {
    let names = faulty.shared().list(Path::new("/data")).expect("list");
    path.file_name()
        .is_some_and(|name| names.iter().any(|n| n.as_str() == name))
}

#[test]
fn a_taken_compaction_deletes_while_the_log_goes_on_and_one_at_a_time() {
    let faulty = FaultyFs::new();
    let mut wal = forty_synced_batches(&faulty);
    let before = wal.segment_paths();
    let compaction = wal.take_compaction(LogIndex(60)).expect("take");
    assert!(!compaction.is_empty());
    let taken = compaction.len();
    // Off the log at once, still on disk until run.
    assert_eq!(wal.segment_paths().len(), before.len() - taken);
    assert!(before.iter().all(|path| on_disk(&faulty, path)));
    // While it is alive, nothing more is taken and no reset may delete.
    let second = wal.take_compaction(LogIndex(1000)).expect("take");
    assert!(second.is_empty());
    drop(second);
    assert!(matches!(
        wal.reset_to_snapshot(&snapshot_meta(120, 1)),
        Err(WalError::CompactionRunning { .. })
    ));
    assert!(!wal.is_poisoned());
    // The log goes on being written meanwhile.
    wal.append(&entries(121, 123, 1)).expect("append");
    wal.sync().expect("sync");
    assert_eq!(compaction.run().expect("run"), taken);
    assert!(before[..taken].iter().all(|path| !on_disk(&faulty, path)));
    assert_eq!(wal.stats().segments_deleted_total, taken as u64);
    // Once it ran, the next one takes what is covered.
    assert!(!wal
        .take_compaction(LogIndex(1000))
        .expect("take")
        .is_empty());
}

#[test]
fn a_compaction_dropped_unrun_leaves_segments_the_reopen_replays_below_the_snapshot() {
    let faulty = FaultyFs::new();
    let mut wal = forty_synced_batches(&faulty);
    let before = wal.segment_paths();
    // A crash between taking and deleting.
    drop(wal.take_compaction(LogIndex(60)).expect("take"));
    drop(wal);
    faulty.power_cut();
    assert!(before.iter().all(|path| on_disk(&faulty, path)));
    let snapshot = snapshot_meta(60, 1);
    let (_, initial) = faulty_open(&faulty, Some(&snapshot), small_segments()).expect("reopen");
    assert_eq!(initial.entries, entries(61, 120, 1));
}

#[test]
fn reset_to_snapshot_replaces_the_whole_log_durably() {
    let faulty = FaultyFs::new();
    let (mut wal, _) = faulty_open(&faulty, None, small_segments()).expect("open");
    for batch in 0..10u64 {
        wal.append(&entries(batch * 3 + 1, batch * 3 + 3, 1))
            .expect("append");
        wal.sync().expect("sync");
    }
    wal.append(&entries(31, 31, 1)).expect("unsynced append");
    wal.set_hard_state(hard_state(5, Some(2), 20)).expect("set");
    // The leader's snapshot at 25 has another term than our entry 25.
    let snapshot = snapshot_meta(25, 4);
    wal.reset_to_snapshot(&snapshot).expect("reset");
    assert_eq!(wal.last_index(), LogIndex(25));
    assert_eq!(wal.segment_paths().len(), 1);
    wal.append(&entries(26, 27, 5)).expect("append");
    wal.sync().expect("sync");
    drop(wal);
    faulty.power_cut();
    let (_, initial) = faulty_open(&faulty, Some(&snapshot), small_segments()).expect("reopen");
    assert_eq!(initial.entries, entries(26, 27, 5));
    assert_eq!(initial.hard_state, hard_state(5, Some(2), 20));
    // Without the installed snapshot the reset record cannot be honoured.
    assert!(matches!(
        faulty_open(&faulty, None, small_segments()),
        Err(WalError::Corrupt { .. })
    ));
}

#[test]
fn log_with_another_term_at_the_snapshot_index_is_discarded_after_it() {
    let faulty = FaultyFs::new();
    let (mut wal, _) = faulty_open(&faulty, None, WalOptions::default()).expect("open");
    wal.append(&entries(1, 10, 1)).expect("append");
    wal.sync().expect("sync");
    drop(wal);
    let (_, same) =
        faulty_open(&faulty, Some(&snapshot_meta(5, 1)), WalOptions::default()).expect("open");
    assert_eq!(same.entries, entries(6, 10, 1));
    let (_, other) =
        faulty_open(&faulty, Some(&snapshot_meta(5, 2)), WalOptions::default()).expect("open");
    assert!(
        other.entries.is_empty(),
        "§7: entries after a mismatching index are discarded"
    );
}

#[test]
fn failed_fsync_poisons_and_unsynced_data_is_lost_on_power_cut() {
    let faulty = FaultyFs::new();
    let (mut wal, _) = faulty_open(&faulty, None, WalOptions::default()).expect("open");
    wal.append(&entries(1, 2, 1)).expect("append");
    wal.sync().expect("sync");
    wal.append(&entries(3, 4, 1)).expect("append");
    faulty.fail_next_sync();
    assert!(matches!(wal.sync(), Err(WalError::Io { .. })));
    assert!(matches!(wal.sync(), Err(WalError::Poisoned { .. })));
    assert!(matches!(
        wal.reset_to_snapshot(&snapshot_meta(1, 1)),
        Err(WalError::Poisoned { .. })
    ));
    drop(wal);
    faulty.power_cut();
    let (_, initial) = faulty_open(&faulty, None, WalOptions::default()).expect("reopen");
    assert_eq!(initial.entries, entries(1, 2, 1));
}

/// Every power cut that tears the last unsynced write at any byte recovers to
/// exactly what was synced, with and without preallocation, and the repaired
/// log takes appends and reopens cleanly.
#[test]
fn power_cut_tearing_any_byte_of_unsynced_writes_recovers_the_synced_state() {
    for options in [WalOptions::default(), PLAIN, small_segments()] {
        let faulty = FaultyFs::new();
        let (mut wal, _) = faulty_open(&faulty, None, options).expect("open");
        let mut synced = InitialState::default();
        for batch in 0..6u64 {
            wal.append(&entries(batch * 2 + 1, batch * 2 + 2, 1))
                .expect("append");
            synced
                .entries
                .extend(entries(batch * 2 + 1, batch * 2 + 2, 1));
            wal.sync().expect("sync");
        }
        // Unsynced: a hard state and a suffix replacement.
        wal.set_hard_state(hard_state(2, Some(1), 9)).expect("set");
        wal.append(&entries(10, 14, 2)).expect("append");
        // In the order the WAL writes a batch: entries, then the hard state.
        let mut pending = Vec::new();
        encode_entries_records(&entries(10, 14, 2), &mut pending).expect("encode");
        encode_hard_state_record(&hard_state(2, Some(1), 9), &mut pending).expect("encode");
        // Write without fsync: what the disk might hold when power goes.
        let offset = wal.segment_len_bytes;
        wal.segment.write_at(offset, &pending).expect("write");
        drop(wal);
        for keep in 0..=pending.len() as u64 {
            let trial = FaultyFs::new();
            for path in faulty.files_in(Path::new("/data")) {
                let bytes = faulty.contents(&path).expect("contents");
                trial.put(&path, &bytes);
            }
            trial.create_dir_all(Path::new("/data")).expect("mkdir");
            // The trial's durable bytes are everything; cut back to synced +
            // `keep` bytes of the unsynced write.
            let segment = trial
                .files_in(Path::new("/data"))
                .into_iter()
                .rfind(|p| p.to_string_lossy().ends_with(".log"))
                .expect("segment");
            let mut bytes = trial.contents(&segment).expect("contents");
            let end = (offset + keep) as usize;
            if options.preallocate_bytes > 0 {
                bytes[end..(offset as usize + pending.len())].fill(0);
            } else {
                bytes.truncate(end);
            }
            trial.put(&segment, &bytes);
            let (mut wal, initial) = faulty_open(&trial, None, options)
                .unwrap_or_else(|e| panic!("{options:?} keep {keep}: {e}"));
            let full = keep == pending.len() as u64;
            if full {
                let mut expected = synced.clone();
                expected.hard_state = hard_state(2, Some(1), 9);
                expected.entries.truncate(9);
                expected.entries.extend(entries(10, 14, 2));
                assert_eq!(initial, expected, "{options:?} keep {keep}");
            } else {
                // Only whole records survive; a torn one never appears.
                assert!(
                    initial.entries.len() >= synced.entries.len() || initial.entries.len() == 9,
                    "{options:?} keep {keep}"
                );
                // A prefix of the batch in record order: the replacing
                // entries first, the hard state only once all of them are in.
                let replaced = initial.entries.len() >= 10 && initial.entries[9].term.0 == 2;
                assert!(
                    initial.entries == synced.entries || replaced,
                    "{options:?} keep {keep}: {initial:?}"
                );
                if initial.hard_state == hard_state(2, Some(1), 9) {
                    assert_eq!(initial.entries.len(), 14, "{options:?} keep {keep}");
                }
            }
            let next = wal.last_index().0 + 1;
            wal.append(&entries(next, next, 7)).expect("append");
            wal.sync().expect("sync");
            drop(wal);
            let (_, reopened) = faulty_open(&trial, None, options).expect("reopen");
            assert_eq!(reopened.entries.last().map(|e| e.index.0), Some(next));
        }
    }
}

/// A flipped bit in any synced record but the last is reported as
/// corruption naming the segment; never served.
#[test]
fn a_bit_flip_in_any_preallocated_record_is_detected() {
    let faulty = FaultyFs::new();
    let (mut wal, _) = faulty_open(&faulty, None, WalOptions::default()).expect("open");
    for batch in 0..4u64 {
        wal.append(&entries(batch * 2 + 1, batch * 2 + 2, 1))
            .expect("append");
        wal.sync().expect("sync");
    }
    let segment = wal.segment_path().to_path_buf();
    let len = wal.segment_len_bytes;
    drop(wal);
    let mut last_record_start = 0;
    {
        let bytes = faulty.contents(&segment).expect("contents");
        let mut offset = 0;
        while let Frame::Valid { next_offset, .. } = read_frame(&bytes, offset) {
            last_record_start = offset as u64;
            offset = next_offset;
        }
    }
    for position in 0..len {
        let bit = (position % 8) as u8;
        assert!(faulty.flip_bit(&segment, position, bit));
        let copy = FaultyFs::new();
        copy.create_dir_all(Path::new("/data")).expect("mkdir");
        copy.put(&segment, &faulty.contents(&segment).expect("contents"));
        match faulty_open(&copy, None, WalOptions::default()) {
            Err(WalError::Corrupt { path, .. }) => {
                assert!(position < last_record_start, "flip at {position}");
                assert_eq!(path, segment);
            }
            Ok((_, initial)) => {
                // Only the last record may be taken for a torn write.
                assert!(
                    position >= last_record_start,
                    "flip at {position} was served"
                );
                assert_eq!(initial.entries, entries(1, 6, 1), "flip at {position}");
            }
            Err(other) => panic!("flip at {position}: {other}"),
        }
        assert!(faulty.flip_bit(&segment, position, bit));
    }
}

/// A batch that replaces a conflicting suffix and raises the commit index over
/// it, cut by a power failure at any byte, never recovers a commit index that
/// covers a stale entry (that entry would be applied after the restart). The
/// WAL writes a batch's entries before its hard state for this.
#[test]
fn torn_batch_never_keeps_a_commit_index_over_stale_entries() {
    for options in [WalOptions::default(), PLAIN] {
        let faulty = FaultyFs::new();
        let (mut wal, _) = faulty_open(&faulty, None, options).expect("open");
        wal.append(&entries(1, 12, 1)).expect("append");
        wal.set_hard_state(hard_state(1, Some(1), 5)).expect("set");
        wal.sync().expect("sync");
        let offset = wal.segment_len_bytes;
        // The batch a follower persists for an AppendEntries that replaces
        // 10..12 with term-2 entries and commits through 14.
        wal.append(&entries(10, 14, 2)).expect("append");
        wal.set_hard_state(hard_state(2, None, 14)).expect("set");
        wal.sync().expect("sync");
        let written = wal.segment_len_bytes;
        drop(wal);
        let segment = faulty
            .files_in(Path::new("/data"))
            .into_iter()
            .rfind(|p| p.to_string_lossy().ends_with(".log"))
            .expect("segment");
        let full = faulty.contents(&segment).expect("contents");
        for keep in 0..=(written - offset) {
            let trial = FaultyFs::new();
            for path in faulty.files_in(Path::new("/data")) {
                trial.put(&path, &faulty.contents(&path).expect("contents"));
            }
            let mut bytes = full.clone();
            let end = (offset + keep) as usize;
            if options.preallocate_bytes > 0 {
                bytes[end..written as usize].fill(0);
            } else {
                bytes.truncate(end);
            }
            trial.put(&segment, &bytes);
            let (_, initial) = faulty_open(&trial, None, options)
                .unwrap_or_else(|e| panic!("{options:?} keep {keep}: {e}"));
            let commit = initial.hard_state.commit_index.0;
            for entry in initial.entries.iter().filter(|e| e.index.0 <= commit) {
                let want = if entry.index.0 >= 10 { 2 } else { 1 };
                assert_eq!(
                    entry.term.0, want,
                    "{options:?} keep {keep}: commit index {commit} covers stale entry {entry:?}"
                );
            }
        }
    }
}

/// `raft.max_bytes_per_append` is validated against `MAX_ENTRY_DATA_BYTES`:
/// an entry of that much data, with the largest term and index, still fits
/// one record, so a write the leader accepts can always be logged.
#[test]
fn the_largest_accepted_entry_fits_one_record() {
    let entry = Entry {
        term: Term(u64::MAX),
        index: LogIndex(u64::MAX),
        kind: EntryKind::Normal,
        data: bytes::Bytes::from(vec![7u8; MAX_ENTRY_DATA_BYTES]),
    };
    let encoded = postcard::to_stdvec(&entry).expect("encodes");
    assert!(
        encoded.len() <= MAX_RECORD_PAYLOAD_BYTES,
        "{}",
        encoded.len()
    );
    let mut out = Vec::new();
    encode_entries_records(std::slice::from_ref(&entry), &mut out).expect("one record");
    // One byte more of data could not be promised.
    let over = Entry {
        data: bytes::Bytes::from(vec![7u8; MAX_RECORD_PAYLOAD_BYTES]),
        ..entry
    };
    assert!(encode_entries_records(std::slice::from_ref(&over), &mut Vec::new()).is_err());
}

/// Entries are encoded straight into the batch buffer: after what it held,
/// in as few records as fit `MAX_RECORD_PAYLOAD_BYTES` (a record closed
/// before the entry that would take it over), and an entry too large for a
/// record leaves the buffer as it was.
#[test]
fn entries_split_into_records_in_place() {
    let entry = |index: u64, len: usize| Entry {
        term: Term(3),
        index: LogIndex(index),
        kind: EntryKind::Normal,
        data: Bytes::from(vec![index as u8; len]),
    };
    let third = MAX_RECORD_PAYLOAD_BYTES / 3;
    let entries = vec![
        entry(1, 10),
        entry(2, third),
        entry(3, third),
        entry(4, third),
        entry(5, 20),
    ];
    let mut out = b"earlier".to_vec();
    encode_entries_records(&entries, &mut out).expect("fits");
    assert_eq!(&out[..7], b"earlier");
    let mut offset = 7;
    let mut records = Vec::new();
    while offset < out.len() {
        let Frame::Valid {
            kind,
            payload,
            next_offset,
        } = read_frame(&out, offset)
        else {
            panic!("no valid record at {offset}");
        };
        assert_eq!(kind, KIND_ENTRIES);
        let mut decoded = Vec::new();
        let mut rest = payload;
        while !rest.is_empty() {
            let (e, tail) = postcard::take_from_bytes::<Entry>(rest).expect("decodes");
            decoded.push(e);
            rest = tail;
        }
        records.push(decoded);
        offset = next_offset;
    }
    // Three thirds plus framing do not fit one record: the third third
    // opens the second one, with the small entry after it.
    assert_eq!(records, vec![entries[..3].to_vec(), entries[3..].to_vec()]);

    let mut out = b"earlier".to_vec();
    let too_large = vec![entry(1, 10), entry(2, MAX_RECORD_PAYLOAD_BYTES)];
    assert!(encode_entries_records(&too_large, &mut out).is_err());
    assert_eq!(out, b"earlier");
    // Nothing to frame, nothing appended.
    encode_entries_records(&[], &mut out).expect("empty");
    assert_eq!(out, b"earlier");
}
