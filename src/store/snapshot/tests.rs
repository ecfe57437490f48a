//! Snapshot round trips, retention, chunk checks, crash atomicity, and
//! detection of every bit flip.

use proptest::prelude::*;

use super::*;
use crate::raft::NodeId;
use crate::store::fs::{FaultyFs, StorageFs};

fn meta(index: u64, term: u64) -> SnapshotMeta {
    SnapshotMeta {
        last_included_index: LogIndex(index),
        last_included_term: Term(term),
        membership: crate::raft::Membership::voters_only([NodeId(1), NodeId(2), NodeId(3)]),
    }
}

fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn store(fs: &FaultyFs) -> SnapshotStore {
    SnapshotStore::open_with(fs.shared(), Path::new("/data")).expect("open store")
}

fn write(store: &SnapshotStore, m: &SnapshotMeta, bytes: &[u8], chunk: usize) -> PathBuf {
    let mut writer = store.begin(m).expect("begin");
    for part in bytes.chunks(chunk.max(1)) {
        writer.write_chunk(part).expect("write chunk");
    }
    writer.finish().expect("finish").1
}

#[test]
fn round_trip_streams_the_payload_back_in_chunks() {
    let fs = FaultyFs::new();
    let store = store(&fs);
    let bytes = payload(3 * WRITE_BUFFER_BYTES + 17, 1);
    let path = write(&store, &meta(42, 3), &bytes, 4096);
    assert!(path.ends_with("snap-00000000000000000042-3.snap"));
    let (latest, latest_path) = store.latest().expect("latest").expect("a snapshot");
    assert_eq!(latest, meta(42, 3));
    assert_eq!(latest_path, path);
    let mut reader = store.open_reader(&path).expect("reader");
    assert_eq!(reader.payload_len(), bytes.len() as u64);
    let mut back = Vec::new();
    while let Some(chunk) = reader.read_chunk(1000).expect("chunk") {
        assert!(chunk.len() <= 1000);
        back.extend_from_slice(&chunk);
    }
    assert_eq!(back, bytes);
    // An empty payload is a valid snapshot too.
    let path = write(&store, &meta(43, 3), &[], 1);
    assert_eq!(
        store
            .open_reader(&path)
            .expect("reader")
            .read_to_end()
            .expect("read"),
        b""
    );
}

#[test]
fn real_files_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SnapshotStore::open(dir.path()).expect("open");
    let bytes = payload(10_000, 2);
    let path = write(&store, &meta(7, 1), &bytes, 333);
    let reader = store.open_reader(&path).expect("reader");
    assert_eq!(reader.read_to_end().expect("read"), bytes);
    assert_eq!(
        store.latest().expect("latest").map(|(m, _)| m),
        Some(meta(7, 1))
    );
}

#[test]
fn retention_keeps_the_two_newest() {
    let fs = FaultyFs::new();
    let store = store(&fs);
    for index in [10, 20, 30, 40] {
        write(&store, &meta(index, 1), &payload(100, index as u8), 7);
    }
    let left: Vec<LogIndex> = store.list().expect("list").iter().map(|s| s.0).collect();
    assert_eq!(left, vec![LogIndex(40), LogIndex(30)]);
    assert_eq!(store.compaction_floor().expect("floor"), Some(LogIndex(30)));
    // Deletions are durable (the directory was fsynced).
    fs.power_cut();
    assert_eq!(store.list().expect("list").len(), 2);
}

#[test]
fn a_bit_flip_anywhere_is_detected_and_the_previous_snapshot_is_used() {
    let fs = FaultyFs::new();
    let store = store(&fs);
    let older = payload(64, 9);
    write(&store, &meta(5, 1), &older, 10);
    let bytes = payload(300, 4);
    let path = write(&store, &meta(9, 2), &bytes, 50);
    let len = fs.contents(&path).expect("file").len() as u64;
    for offset in 0..len {
        let bit = (offset % 8) as u8;
        assert!(fs.flip_bit(&path, offset, bit));
        let err = store
            .verify(&path)
            .expect_err("a flipped bit must not validate");
        assert!(
            matches!(err, SnapshotError::Corrupt { ref path, .. } if path.ends_with("snap-00000000000000000009-2.snap")),
            "flip at {offset}: {err}"
        );
        let (latest, _) = store.latest().expect("latest").expect("fallback");
        assert_eq!(latest, meta(5, 1), "flip at {offset}");
        assert!(fs.flip_bit(&path, offset, bit));
    }
    assert_eq!(
        store.latest().expect("latest").expect("newest").0,
        meta(9, 2)
    );
}

#[test]
fn receive_rejects_duplicate_and_out_of_order_chunks() {
    let fs = FaultyFs::new();
    let store = store(&fs);
    let bytes = payload(1000, 5);
    let mut writer = store.begin_receive(&meta(100, 4)).expect("begin");
    writer.write_chunk_at(0, &bytes[..400]).expect("first");
    assert!(matches!(
        writer.write_chunk_at(0, &bytes[..400]),
        Err(SnapshotError::ChunkOffset {
            offset: 0,
            expected: 400,
            ..
        })
    ));
    assert!(matches!(
        writer.write_chunk_at(800, &bytes[800..]),
        Err(SnapshotError::ChunkOffset {
            offset: 800,
            expected: 400,
            ..
        })
    ));
    writer
        .write_chunk_at(400, &bytes[400..800])
        .expect("second");
    writer.write_chunk_at(800, &bytes[800..]).expect("third");
    let (_, path) = writer.finish().expect("finish");
    assert_eq!(
        store
            .open_reader(&path)
            .expect("reader")
            .read_to_end()
            .expect("read"),
        bytes
    );
}

#[test]
fn an_unfinished_snapshot_never_counts() {
    let fs = FaultyFs::new();
    let store = store(&fs);
    write(&store, &meta(3, 1), &payload(10, 1), 4);
    let mut writer = store.begin(&meta(8, 1)).expect("begin");
    writer.write_chunk(&payload(100, 2)).expect("write");
    fs.sync_dir(store.dir()).expect("sync dir");
    // Crash before finish: the temp file is ignored, then deleted at open.
    std::mem::forget(writer);
    fs.power_cut();
    let reopened = SnapshotStore::open_with(fs.shared(), Path::new("/data")).expect("reopen");
    assert_eq!(
        reopened.latest().expect("latest").expect("old").0,
        meta(3, 1)
    );
    assert!(fs
        .files_in(reopened.dir())
        .iter()
        .all(|p| !p.to_string_lossy().ends_with(".tmp")));
    // A finished snapshot survives a power cut right after finish.
    write(&reopened, &meta(9, 2), &payload(10, 3), 4);
    fs.power_cut();
    assert_eq!(
        reopened.latest().expect("latest").expect("new").0,
        meta(9, 2)
    );
}

#[test]
fn a_failed_fsync_leaves_no_snapshot() {
    let fs = FaultyFs::new();
    let store = store(&fs);
    let mut writer = store.begin(&meta(8, 1)).expect("begin");
    writer.write_chunk(&payload(100, 2)).expect("write");
    fs.fail_next_sync();
    assert!(matches!(writer.finish(), Err(SnapshotError::Io { .. })));
    assert!(store.latest().expect("latest").is_none());
    assert!(store.list().expect("list").is_empty());
}

#[test]
fn a_huge_metadata_length_is_corruption_not_an_allocation() {
    let fs = FaultyFs::new();
    let store = store(&fs);
    let mut bytes = HEADER_MAGIC.to_vec();
    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
    bytes.extend_from_slice(&[0u8; 64]);
    let path = store.dir().join(snapshot_file_name(&meta(1, 1)));
    fs.put(&path, &bytes);
    assert!(matches!(
        store.verify(&path),
        Err(SnapshotError::Corrupt { offset: 8, .. })
    ));
    assert!(store.latest().expect("latest").is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary bytes as a snapshot file: never a panic, never valid by luck
    /// with a wrong name.
    #[test]
    fn arbitrary_bytes_never_panic_the_reader(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let fs = FaultyFs::new();
        let store = store(&fs);
        let path = store.dir().join(snapshot_file_name(&meta(1, 1)));
        fs.put(&path, &bytes);
        let _ = store.verify(&path);
        let _ = store.latest();
    }

    /// A valid snapshot with arbitrary damage (bytes overwritten, truncated or
    /// extended) either still reads back exactly or is reported corrupt.
    #[test]
    fn corrupted_valid_snapshots_are_detected(
        data in proptest::collection::vec(any::<u8>(), 0..300),
        edits in proptest::collection::vec((any::<u16>(), any::<u8>()), 1..4),
        cut in proptest::option::of(any::<u16>()),
        extra in proptest::collection::vec(any::<u8>(), 0..8),
    ) {
        let fs = FaultyFs::new();
        let store = store(&fs);
        let path = write(&store, &meta(11, 2), &data, 64);
        let original = fs.contents(&path).expect("file");
        let mut damaged = original.clone();
        for (position, value) in &edits {
            let i = *position as usize % damaged.len();
            damaged[i] = *value;
        }
        if let Some(cut) = cut {
            damaged.truncate(cut as usize % (damaged.len() + 1));
        }
        damaged.extend_from_slice(&extra);
        fs.put(&path, &damaged);
        match store.open_reader(&path).and_then(SnapshotReader::read_to_end) {
            Ok(read) => {
                prop_assert_eq!(&damaged, &original);
                prop_assert_eq!(read, data);
            }
            Err(SnapshotError::Corrupt { .. }) => prop_assert!(damaged != original),
            Err(other) => prop_assert!(false, "unexpected error {}", other),
        }
    }
}

/// A received snapshot is not one of ours until installed: received files
/// never push the last good snapshots out of retention, never show in
/// `list`/`latest`, are gone after a restart, and become a snapshot (with
/// retention applied then) only through `promote_received`.
#[test]
fn received_snapshots_never_displace_the_last_good_one_until_installed() {
    let fs = FaultyFs::new();
    let store = store(&fs);
    write(&store, &meta(10, 1), &payload(100, 1), 64);
    write(&store, &meta(20, 1), &payload(100, 2), 64);
    let receive = |index: u64| {
        let mut writer = store.begin_receive(&meta(index, 2)).expect("begin");
        writer.write_chunk_at(0, &payload(50, 3)).expect("chunk");
        writer.finish().expect("finish")
    };
    receive(1_000);
    receive(2_000);
    let indexes = |store: &SnapshotStore| -> Vec<u64> {
        store
            .list()
            .expect("list")
            .into_iter()
            .map(|(index, _, _)| index.0)
            .collect()
    };
    assert_eq!(
        indexes(&store),
        vec![20, 10],
        "received files are not ours yet"
    );
    assert_eq!(
        store
            .latest()
            .expect("latest")
            .map(|(m, _)| m.last_included_index),
        Some(LogIndex(20))
    );
    // Only the newest received file is kept.
    assert!(store
        .open_reader(&store.received_path(&meta(1_000, 2)))
        .is_err());
    assert!(store
        .open_reader(&store.received_path(&meta(2_000, 2)))
        .is_ok());
    // Installing it makes it a snapshot; retention applies from there.
    store.promote_received(&meta(2_000, 2)).expect("promote");
    assert_eq!(indexes(&store), vec![2_000, 20]);
    // A restart forgets a received file that was never installed.
    let again = |store: &SnapshotStore| {
        let mut writer = store.begin_receive(&meta(3_000, 2)).expect("begin");
        writer.write_chunk_at(0, &payload(50, 4)).expect("chunk");
        writer.finish().expect("finish");
    };
    again(&store);
    let reopened = SnapshotStore::open_with(fs.shared(), Path::new("/data")).expect("reopen");
    assert!(reopened
        .open_reader(&reopened.received_path(&meta(3_000, 2)))
        .is_err());
    assert_eq!(indexes(&reopened), vec![2_000, 20]);
}
