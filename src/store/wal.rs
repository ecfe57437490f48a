//! The write-ahead log: the durable Raft log and hard state (Figure 2,
//! "persistent state on all servers") in segmented, append-only files.
//!
//! # What it owns
//!
//! In one data directory: the segment files `wal-<16-digit sequence>.log` and
//! the `LOCK` file. Other files (the `snapshots/` directory, see
//! `snapshot.rs`) are ignored. All file access goes through
//! [`StorageFs`](super::fs::StorageFs) (real files by default, a
//! fault-injecting in-memory filesystem in tests). It does blocking file I/O:
//! call it from a dedicated thread or `spawn_blocking`, never from an async
//! task directly.
//!
//! # On-disk format
//!
//! A segment is a sequence of records, nothing else (no file header),
//! optionally followed by zero fill (preallocation, below):
//!
//! ```text
//! +----------------+----------------+---------+------------------+
//! | len: u32 LE    | crc: u32 LE    | kind:u8 | payload: len B   |
//! +----------------+----------------+---------+------------------+
//!   payload bytes    CRC32C over kind + payload
//! ```
//!
//! - `kind = 1`, hard state: the postcard encoding of one [`HardState`].
//! - `kind = 2`, entries: one or more postcard-encoded [`Entry`] values,
//!   concatenated; they are contiguous and ascending. A batch larger than
//!   [`MAX_RECORD_PAYLOAD_BYTES`] is split into several records.
//! - `kind = 3`, log reset: postcard `(LogIndex, Term)`, the last index and
//!   term of a snapshot installed from the leader ([`Wal::reset_to_snapshot`]):
//!   every entry before it is discarded and the log continues after that index.
//! - `len` is never 0 and never above [`MAX_RECORD_PAYLOAD_BYTES`]; a reader
//!   never allocates from it (segments are read whole, `len` is checked against
//!   the bytes the file holds).
//! - A new record kind is the way to evolve the format; an unknown kind with a
//!   valid checksum is reported as corruption, never skipped.
//!
//! Segment sequence numbers have no gaps; the first one is 1 until log
//! compaction deletes old segments from the front. A new segment is started
//! when the current one would grow past [`WalOptions::segment_size_bytes`];
//! every segment after the first begins with a hard-state record, so a segment
//! never depends on an older one for the hard state.
//!
//! # Preallocation
//!
//! With [`WalOptions::preallocate_bytes`] > 0 (the default), the active segment
//! is extended with written zeros, that many bytes at a time, ahead of the
//! records. Records then overwrite blocks that already exist, so `fdatasync`
//! has no file size or extent allocation to journal: one data flush per sync,
//! which is what lets a single fsync'd append run at the disk's raw
//! write+fdatasync rate (see `benches/store.rs`). The zero fill is the end of
//! the log for recovery (a record's `len` is never 0). Before a new segment is
//! started the old one is truncated to its last record and synced, so only the
//! last segment ever has a zero tail.
//!
//! # Snapshots and compaction
//!
//! Once a snapshot through index `i` is durable (`snapshot.rs`),
//! [`Wal::compact`] deletes the oldest segments whose entries are all `<= i`
//! (never the active one; a prefix of the sequence, so no gap appears), then
//! fsyncs the directory. [`Wal::take_compaction`] splits that in two: the
//! segments leave the log at once and [`Compaction::run`] deletes them on
//! another thread while appends go on (a node must not stall on unlinking
//! 64 MiB files). One compaction at a time: while one is alive the `Wal`
//! neither takes another nor resets, so deletions stay oldest first. [`Wal::open_with_snapshot`] restores a log that
//! continues after the snapshot: entries at or below
//! `snapshot.last_included_index` are dropped while replaying; a first entry
//! after a gap is [`WalError::Corrupt`]. If the log holds an entry at the
//! snapshot's index with another term than the snapshot's, every entry after
//! it is discarded (§7: "if existing log entry has same index and term as
//! snapshot's last included entry, retain log entries following it").
//!
//! [`Wal::reset_to_snapshot`] (a follower that installed a leader's snapshot)
//! starts a new segment holding the hard state and a log-reset record, syncs
//! it, then deletes every older segment. A crash in between leaves old
//! segments that replay before the reset record, which discards them.
//!
//! # Invariants
//!
//! - Replaying all records in order gives the log (contiguous after the
//!   snapshot index, or from 1) and the hard state: the last hard-state record
//!   wins; an entries record whose first index is already in the log replaces
//!   the log from that index (a follower's conflicting suffix, §5.3).
//! - Only the last segment is ever written; older ones are immutable, fully
//!   synced and end exactly at their last record.
//! - At most one process uses a directory: an exclusive lock on `LOCK` is held
//!   for the life of the [`Wal`] (`flock(LOCK_EX | LOCK_NB)` on real files).
//!
//! # Durability contract
//!
//! [`LogStore::append`] and [`LogStore::set_hard_state`] only buffer in memory.
//! [`LogStore::sync`] does one positioned write of everything buffered and one
//! `fdatasync` (a sync that starts a new segment first truncates and syncs the
//! old one, creates the file and fsyncs the directory); when it returns `Ok`,
//! all of it survives a crash. A hard state set several times between syncs
//! is written once. Group commit comes from the driver: everything it appends
//! while the previous sync runs is covered by the next one.
//!
//! A failed write or fsync is fatal: the page cache may have dropped the dirty
//! pages and a retried fsync could report success for data that is gone. After
//! any such failure the `Wal` is *poisoned* and every later call returns
//! [`WalError::Poisoned`]; the caller must stop the node (crash-stop). On
//! restart, recovery below decides what survived.
//!
//! # Recovery (at [`Wal::open`])
//!
//! - A bad tail of the **last** segment (incomplete header, short payload,
//!   checksum mismatch, zero fill) with no valid record anywhere after it is a
//!   torn write that was never acknowledged. Without preallocation the file is
//!   truncated to the start of the bad record; with it, the non-zero garbage is
//!   overwritten with zeros (the file keeps its preallocated length). Either
//!   way the file is synced and a `warn!` names the file and offset. A plain
//!   zero tail of a preallocated segment is the expected end of log: kept,
//!   no warning.
//! - A bad record followed by any valid record, a bad record in any segment but
//!   the last, a record that decodes to nonsense, a missing segment, or a log
//!   that does not continue the snapshot is corruption of acknowledged data:
//!   `open` fails with [`WalError::Corrupt`] naming the file and byte offset.
//!   Nothing is skipped silently.
//!
//!   Repair: stop the node, move the data directory aside (keep it for
//!   inspection), start the node with an empty directory, and let it catch up
//!   from the leader (log replication or InstallSnapshot). Do this on one node
//!   at a time so a majority keeps every committed entry.
//!
//!   "Valid record after it" is checked at every byte offset after the bad
//!   record up to the last non-zero byte of the file (a corrupt length field
//!   hides where the next record starts; a valid record starts with a non-zero
//!   length, so none can start in the zero fill).
//!
//!   A filesystem may persist the sectors of an unsynced write out of order, so
//!   a crash can leave a hole followed by valid records of the same,
//!   never-acknowledged write; this reads as corruption. That errs on the safe
//!   side: the operator repairs instead of the node silently losing data.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{info, warn};

use super::fs::{real_fs, FsLock, SharedFs, StorageFile, StorageFs};
use super::{LogStore, WalError};
use crate::raft::{Entry, HardState, InitialState, LogIndex, SnapshotMeta, Term};

/// Default size past which a new segment is started.
pub const DEFAULT_SEGMENT_SIZE_BYTES: u64 = 64 * 1024 * 1024;

/// Default preallocation step of the active segment.
pub const DEFAULT_PREALLOCATE_BYTES: u64 = 4 * 1024 * 1024;

/// Largest record payload written or accepted. Bounds what a corrupt length
/// field can claim and what a single entry may weigh once encoded.
pub const MAX_RECORD_PAYLOAD_BYTES: usize = 64 * 1024 * 1024;

/// The most an [`Entry`]'s postcard encoding adds to its data: term, index
/// and the data's length as varints (at most 10 bytes each) and the kind.
pub const ENTRY_ENCODING_OVERHEAD_BYTES: usize = 3 * 10 + 1;

/// The largest entry data that always fits one WAL record; config
/// validation keeps `raft.max_bytes_per_append` at or below it.
pub const MAX_ENTRY_DATA_BYTES: usize = MAX_RECORD_PAYLOAD_BYTES - ENTRY_ENCODING_OVERHEAD_BYTES;

/// `len` (4) + `crc` (4) + `kind` (1).
const RECORD_HEADER_LEN_BYTES: usize = 9;

/// The batch buffer is reused between syncs up to this capacity.
const KEPT_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// The lock file's name inside the data directory.
pub const LOCK_FILE_NAME: &str = "LOCK";

const SEGMENT_PREFIX: &str = "wal-";
const SEGMENT_SUFFIX: &str = ".log";
const SEGMENT_SEQ_DIGITS: usize = 16;

const KIND_HARD_STATE: u8 = 1;
const KIND_ENTRIES: u8 = 2;
const KIND_LOG_RESET: u8 = 3;

/// Zeros written per call when preallocating.
const ZERO_CHUNK_BYTES: usize = 1024 * 1024;

/// Tunables of the WAL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalOptions {
    /// A new segment is started when writing a batch would take the current
    /// one past this size (a batch is never split across segments).
    pub segment_size_bytes: u64,
    /// The active segment is zero-filled this far ahead of its records (0: no
    /// preallocation). See the module doc.
    pub preallocate_bytes: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size_bytes: DEFAULT_SEGMENT_SIZE_BYTES,
            preallocate_bytes: DEFAULT_PREALLOCATE_BYTES,
        }
    }
}

/// Counters since [`Wal::open`], for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Record bytes written (headers included; not zero fill).
    pub bytes_written_total: u64,
    /// `fdatasync` calls on segments for records (one per non-empty
    /// [`LogStore::sync`]).
    pub syncs_total: u64,
    /// Segment files created.
    pub segments_created_total: u64,
    /// Segment files deleted by a log reset or taken by a compaction.
    pub segments_deleted_total: u64,
    /// Torn tail bytes truncated (or zeroed) at open.
    pub torn_tail_bytes_truncated: u64,
}

/// A segment that is no longer written.
#[derive(Clone, Debug)]
struct ClosedSegment {
    path: PathBuf,
    /// Highest entry index any of its records holds (or a log reset names).
    max_index: LogIndex,
}

/// Old segments taken off the log by [`Wal::take_compaction`], deleted by
/// [`Compaction::run`]. Dropped without running, they stay on disk and replay
/// harmlessly below the snapshot at the next open.
#[must_use = "the segments are deleted only by run"]
pub struct Compaction {
    fs: SharedFs,
    dir: PathBuf,
    /// Oldest first.
    segments: Vec<ClosedSegment>,
    /// Keeps the `Wal` from taking or deleting more until this is gone.
    _outstanding: Arc<()>,
}

impl Compaction {
    /// How many segments it deletes.
    pub fn len(&self) -> usize {
        self.segments.len()
    }

    /// Whether it deletes nothing.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Deletes the segments, oldest first, then fsyncs the directory;
    /// returns how many were deleted. A failure is as fatal as a failed WAL
    /// fsync: the node must stop (the segments left are a contiguous suffix
    /// of the old ones, which the next open replays below the snapshot).
    ///
    /// # Errors
    /// [`WalError::Io`] if a delete or the directory fsync fails.
    pub fn run(self) -> Result<usize, WalError> {
        for segment in &self.segments {
            // Ordering: oldest first, so a crash leaves a contiguous suffix.
            self.fs
                .remove(&segment.path)
                .map_err(io_error("delete segment", &segment.path))?;
            info!(path = %segment.path.display(), max_index = segment.max_index.0, "deleted WAL segment");
        }
        if !self.segments.is_empty() {
            sync_dir(&*self.fs, &self.dir)?;
        }
        Ok(self.segments.len())
    }
}

/// The data directory's lock, taken before the log is opened
/// ([`Wal::lock`]); the [`Wal`] opened from it keeps holding it.
pub struct DataDirLock {
    fs: SharedFs,
    dir: PathBuf,
    lock: FsLock,
}

impl DataDirLock {
    /// The filesystem the directory is on.
    pub fn fs(&self) -> SharedFs {
        self.fs.clone()
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl std::fmt::Debug for DataDirLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataDirLock")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// The file-backed [`LogStore`]. See the module doc for format and contract.
pub struct Wal {
    fs: SharedFs,
    dir: PathBuf,
    options: WalOptions,
    /// Held for the `Wal`'s life.
    _lock: FsLock,
    /// The last segment, written at `segment_len_bytes`.
    segment: Box<dyn StorageFile>,
    segment_path: PathBuf,
    segment_seq: u64,
    /// Bytes of records in the last segment, written and synced.
    segment_len_bytes: u64,
    /// Length of the last segment file (records + zero fill).
    segment_allocated_bytes: u64,
    /// Highest entry index written to the last segment.
    segment_max_index: LogIndex,
    /// Older segments, oldest first.
    closed_segments: VecDeque<ClosedSegment>,
    /// The hard state as of the last successful sync.
    synced_hard_state: HardState,
    /// A hard state set since the last sync; only the latest is written.
    pending_hard_state: Option<HardState>,
    /// Framed entries records appended since the last sync.
    pending_entry_records: Vec<u8>,
    /// Highest entry index among the pending records.
    pending_max_index: LogIndex,
    /// Last index of the log including unsynced appends (0: empty log).
    last_index: LogIndex,
    /// Set by a failed write or fsync; see the module doc.
    poisoned: bool,
    stats: WalStats,
    /// One clone per [`Compaction`] taken and not yet run or dropped.
    compacting: Arc<()>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("segment_path", &self.segment_path)
            .field("segment_len_bytes", &self.segment_len_bytes)
            .field("last_index", &self.last_index)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl Wal {
    /// Opens (creating it if missing) the WAL in `dir` with default options and
    /// no snapshot, and returns it with the durable state it holds.
    ///
    /// # Errors
    /// [`WalError::Locked`] if another `Wal` holds the directory,
    /// [`WalError::Corrupt`] for damage recovery must not repair (module doc),
    /// [`WalError::Io`] for any failed file operation.
    pub fn open(dir: &Path) -> Result<(Wal, InitialState), WalError> {
        Wal::open_with(real_fs(), dir, None, WalOptions::default())
    }

    /// Like [`Wal::open`] with explicit options.
    ///
    /// # Errors
    /// As [`Wal::open`].
    pub fn open_with_options(
        dir: &Path,
        options: WalOptions,
    ) -> Result<(Wal, InitialState), WalError> {
        Wal::open_with(real_fs(), dir, None, options)
    }

    /// Opens the WAL for a node whose newest valid snapshot is `snapshot`
    /// (from [`super::SnapshotStore::latest`]): the returned state carries
    /// that meta and the entries after it (module doc, "Snapshots and
    /// compaction").
    ///
    /// # Errors
    /// As [`Wal::open`]; also [`WalError::Corrupt`] if the log does not
    /// continue the snapshot (a gap after it, or a log reset past it).
    pub fn open_with_snapshot(
        dir: &Path,
        snapshot: Option<&SnapshotMeta>,
    ) -> Result<(Wal, InitialState), WalError> {
        Wal::open_with(real_fs(), dir, snapshot, WalOptions::default())
    }

    /// The general form: any filesystem, snapshot and options.
    ///
    /// # Errors
    /// As [`Wal::open_with_snapshot`].
    pub fn open_with(
        fs: SharedFs,
        dir: &Path,
        snapshot: Option<&SnapshotMeta>,
        options: WalOptions,
    ) -> Result<(Wal, InitialState), WalError> {
        create_dir_durably(&*fs, dir)?;
        let lock = lock_dir(&*fs, dir)?;
        Wal::open_inner(fs, dir, lock, snapshot, options)
    }

    /// Takes the data directory's lock (creating the directory if missing)
    /// without opening the log, for a node that must read other files of the
    /// directory (its snapshots) before it knows how to open the log; then
    /// [`Wal::open_locked`].
    ///
    /// # Errors
    /// [`WalError::Locked`] if another process holds the directory,
    /// [`WalError::Io`] if it cannot be created or locked.
    pub fn lock(dir: &Path) -> Result<DataDirLock, WalError> {
        Wal::lock_with(real_fs(), dir)
    }

    /// [`Wal::lock`] on any filesystem.
    ///
    /// # Errors
    /// As [`Wal::lock`].
    pub fn lock_with(fs: SharedFs, dir: &Path) -> Result<DataDirLock, WalError> {
        create_dir_durably(&*fs, dir)?;
        let lock = lock_dir(&*fs, dir)?;
        Ok(DataDirLock {
            fs,
            dir: dir.to_path_buf(),
            lock,
        })
    }

    /// [`Wal::open_with_snapshot`] under a lock from [`Wal::lock`].
    ///
    /// # Errors
    /// As [`Wal::open_with_snapshot`].
    pub fn open_locked(
        lock: DataDirLock,
        snapshot: Option<&SnapshotMeta>,
    ) -> Result<(Wal, InitialState), WalError> {
        Wal::open_locked_with(lock, snapshot, WalOptions::default())
    }

    /// [`Wal::open_locked`] with explicit options.
    ///
    /// # Errors
    /// As [`Wal::open_with_snapshot`].
    pub fn open_locked_with(
        lock: DataDirLock,
        snapshot: Option<&SnapshotMeta>,
        options: WalOptions,
    ) -> Result<(Wal, InitialState), WalError> {
        let DataDirLock { fs, dir, lock } = lock;
        Wal::open_inner(fs, &dir, lock, snapshot, options)
    }

    fn open_inner(
        fs: SharedFs,
        dir: &Path,
        lock: FsLock,
        snapshot: Option<&SnapshotMeta>,
        options: WalOptions,
    ) -> Result<(Wal, InitialState), WalError> {
        let segments = list_segments(&*fs, dir)?;
        let mut replay = Replay::new(snapshot);
        let mut stats = WalStats::default();
        let mut closed_segments = VecDeque::new();
        let mut last_segment: Option<(u64, PathBuf, u64, u64, LogIndex)> = None;

        for (position, (seq, path)) in segments.iter().enumerate() {
            let is_last = position + 1 == segments.len();
            let bytes = fs.read(path).map_err(io_error("read segment", path))?;
            let file_len = bytes.len() as u64;
            let end = replay_segment(path, &bytes, is_last, &mut replay)?;
            if !is_last {
                closed_segments.push_back(ClosedSegment {
                    path: path.clone(),
                    max_index: end.max_index,
                });
                continue;
            }
            let mut len_bytes = file_len;
            let mut allocated_bytes = file_len;
            if let Some(torn) = &end.torn {
                let repaired = repair_torn_tail(&*fs, path, torn, file_len, options)?;
                stats.torn_tail_bytes_truncated = repaired.cleared_bytes;
                len_bytes = torn.offset;
                allocated_bytes = repaired.allocated_bytes;
            }
            last_segment = Some((
                *seq,
                path.clone(),
                len_bytes,
                allocated_bytes,
                end.max_index,
            ));
        }
        let state = replay.finish(dir)?;

        let (segment_seq, segment_path, segment_len_bytes, segment_allocated_bytes, max_index) =
            match last_segment {
                Some(last) => last,
                None => {
                    let path = segment_path(dir, 1);
                    create_segment_file(&*fs, dir, &path)?;
                    stats.segments_created_total += 1;
                    (1, path, 0, 0, LogIndex(0))
                }
            };
        let segment = fs
            .open(&segment_path)
            .map_err(io_error("open segment for writing", &segment_path))?;

        let last_index = state.entries.last().map_or_else(
            || {
                state
                    .snapshot
                    .as_ref()
                    .map_or(LogIndex(0), |s| s.last_included_index)
            },
            |e| e.index,
        );
        info!(
            dir = %dir.display(),
            segments = segments.len().max(1),
            snapshot_index = state.snapshot.as_ref().map_or(0, |s| s.last_included_index.0),
            last_index = last_index.0,
            term = state.hard_state.term.0,
            commit_index = state.hard_state.commit_index.0,
            "opened write-ahead log"
        );
        let wal = Wal {
            fs,
            dir: dir.to_path_buf(),
            options,
            _lock: lock,
            segment,
            segment_path,
            segment_seq,
            segment_len_bytes,
            segment_allocated_bytes,
            segment_max_index: max_index,
            closed_segments,
            synced_hard_state: state.hard_state,
            pending_hard_state: None,
            pending_entry_records: Vec::new(),
            pending_max_index: LogIndex(0),
            last_index,
            poisoned: false,
            stats,
            compacting: Arc::new(()),
        };
        Ok((wal, state))
    }

    /// The last log index, including appends not yet synced (0: empty log).
    pub fn last_index(&self) -> LogIndex {
        self.last_index
    }

    /// Counters since open.
    pub fn stats(&self) -> WalStats {
        self.stats
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The segment currently written.
    pub fn segment_path(&self) -> &Path {
        &self.segment_path
    }

    /// The segment files, oldest first (the last one is written).
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self
            .closed_segments
            .iter()
            .map(|s| s.path.clone())
            .collect();
        paths.push(self.segment_path.clone());
        paths
    }

    /// Whether an earlier write or fsync failed (every call now fails).
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    fn check_usable(&self) -> Result<(), WalError> {
        if self.poisoned {
            return Err(WalError::Poisoned {
                path: self.dir.clone(),
            });
        }
        Ok(())
    }

    /// Runs `op`; any error poisons the WAL (never retry a write or fsync).
    fn fatal_on_error<T>(
        &mut self,
        op: impl FnOnce(&mut Wal) -> Result<T, WalError>,
    ) -> Result<T, WalError> {
        self.check_usable()?;
        let result = op(self);
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }

    /// Deletes the oldest segments whose entries are all at or below
    /// `through`, never the one being written, then fsyncs the directory.
    /// Returns how many were deleted. The same as [`Wal::take_compaction`]
    /// then [`Compaction::run`], here and now.
    ///
    /// Call it only once a snapshot through `through` is durable
    /// (`SnapshotWriter::finish` returned). To keep the fallback to the
    /// previous snapshot working when the newest one is damaged, compact
    /// through the *older* retained snapshot's index
    /// ([`super::SnapshotStore::compaction_floor`]).
    ///
    /// # Errors
    /// [`WalError::Io`] if a delete or the directory fsync fails (the `Wal` is
    /// then poisoned); [`WalError::Poisoned`] after an earlier failure.
    pub fn compact(&mut self, through: LogIndex) -> Result<usize, WalError> {
        let compaction = self.take_compaction(through)?;
        self.fatal_on_error(|_| compaction.run())
    }

    /// Takes the oldest segments whose entries are all at or below `through`
    /// (never the one being written) off the log, for [`Compaction::run`] to
    /// delete on another thread while the log goes on being written. Nothing
    /// touches the disk here. The same preconditions as [`Wal::compact`].
    ///
    /// While a compaction taken earlier is still alive (not yet run or
    /// dropped) this takes nothing: deletions must happen oldest first, one
    /// batch after the other, or a crash could leave a gap in the segment
    /// sequence. The segments stay for the next compaction, whose floor is
    /// never lower.
    ///
    /// # Errors
    /// [`WalError::Poisoned`] after an earlier failure.
    pub fn take_compaction(&mut self, through: LogIndex) -> Result<Compaction, WalError> {
        self.check_usable()?;
        let covered = if Arc::strong_count(&self.compacting) == 1 {
            self.closed_segments
                .iter()
                .take_while(|segment| segment.max_index <= through)
                .count()
        } else {
            0
        };
        Ok(self.take_oldest(covered))
    }

    /// The `count` oldest closed segments, off the log, as a compaction.
    fn take_oldest(&mut self, count: usize) -> Compaction {
        let segments: Vec<ClosedSegment> = self.closed_segments.drain(..count).collect();
        self.stats.segments_deleted_total += segments.len() as u64;
        Compaction {
            fs: Arc::clone(&self.fs),
            dir: self.dir.clone(),
            segments,
            _outstanding: Arc::clone(&self.compacting),
        }
    }

    /// Replaces the whole log by a snapshot installed from the leader: later
    /// appends start at `meta.last_included_index + 1`. Unsynced appends are
    /// discarded; a pending hard state is written with the reset. Durable when
    /// this returns `Ok` (module doc, "Snapshots and compaction").
    ///
    /// Call it after the snapshot file is durable
    /// (`SnapshotWriter::finish`), so a restart finds the snapshot the log
    /// continues.
    ///
    /// # Errors
    /// [`WalError::Io`] on a failed file operation (the `Wal` is then
    /// poisoned); [`WalError::Poisoned`] after an earlier failure.
    pub fn reset_to_snapshot(&mut self, meta: &SnapshotMeta) -> Result<(), WalError> {
        // Its deletions would overtake the older ones still to come.
        if Arc::strong_count(&self.compacting) > 1 {
            return Err(WalError::CompactionRunning {
                path: self.dir.clone(),
            });
        }
        self.fatal_on_error(|wal| {
            wal.pending_entry_records.clear();
            wal.pending_max_index = LogIndex(0);
            let hard_state = wal.pending_hard_state.unwrap_or(wal.synced_hard_state);
            wal.roll_segment()?;
            let mut batch = Vec::new();
            encode_hard_state_record(&hard_state, &mut batch)?;
            encode_log_reset_record(
                meta.last_included_index,
                meta.last_included_term,
                &mut batch,
            )?;
            wal.write_and_sync(&batch)?;
            wal.segment_max_index = meta.last_included_index;
            wal.synced_hard_state = hard_state;
            wal.pending_hard_state = None;
            wal.last_index = meta.last_included_index;
            // Ordering: the reset record is durable before any old segment goes.
            let all = wal.closed_segments.len();
            wal.take_oldest(all).run()?;
            info!(
                index = meta.last_included_index.0,
                term = meta.last_included_term.0,
                "WAL reset to an installed snapshot"
            );
            Ok(())
        })
    }

    /// Starts segment `segment_seq + 1`. The previous segment is first cut to
    /// its last record and synced (only the last segment has a zero tail).
    fn roll_segment(&mut self) -> Result<(), WalError> {
        if self.segment_allocated_bytes != self.segment_len_bytes {
            self.segment
                .set_len(self.segment_len_bytes)
                .map_err(io_error("truncate segment", &self.segment_path))?;
            self.segment
                .sync_data()
                .map_err(io_error("fdatasync segment", &self.segment_path))?;
        }
        let seq = self.segment_seq + 1;
        let path = segment_path(&self.dir, seq);
        create_segment_file(&*self.fs, &self.dir, &path)?;
        let segment = self
            .fs
            .open(&path)
            .map_err(io_error("open segment for writing", &path))?;
        info!(path = %path.display(), "started new WAL segment");
        let previous_path = std::mem::replace(&mut self.segment_path, path);
        self.closed_segments.push_back(ClosedSegment {
            path: previous_path,
            max_index: self.segment_max_index,
        });
        self.segment = segment;
        self.segment_seq = seq;
        self.segment_len_bytes = 0;
        self.segment_allocated_bytes = 0;
        self.segment_max_index = LogIndex(0);
        self.stats.segments_created_total += 1;
        Ok(())
    }

    /// Writes `batch` after the last record (zero-filling ahead when
    /// preallocating), then one `fdatasync`.
    fn write_and_sync(&mut self, batch: &[u8]) -> Result<(), WalError> {
        let offset = self.segment_len_bytes;
        let end = offset + batch.len() as u64;
        // Ordering: one write (plus zero fill), then one fdatasync; only after
        // both succeed is the batch reported durable (the caller may then send
        // votes/acks).
        self.segment
            .write_at(offset, batch)
            .map_err(io_error("write segment", &self.segment_path))?;
        self.stats.bytes_written_total += batch.len() as u64;
        if self.options.preallocate_bytes > 0 && end > self.segment_allocated_bytes {
            let step = self.options.preallocate_bytes;
            let target = end.div_ceil(step) * step;
            write_zeros(&mut *self.segment, &self.segment_path, end, target)?;
            self.segment_allocated_bytes = target;
        }
        self.segment_allocated_bytes = self.segment_allocated_bytes.max(end);
        self.segment
            .sync_data()
            .map_err(io_error("fdatasync segment", &self.segment_path))?;
        self.stats.syncs_total += 1;
        self.segment_len_bytes = end;
        Ok(())
    }

    fn sync_buffered(&mut self) -> Result<(), WalError> {
        let hard_state_changed = self
            .pending_hard_state
            .is_some_and(|hard_state| hard_state != self.synced_hard_state);
        if !hard_state_changed && self.pending_entry_records.is_empty() {
            self.pending_hard_state = None;
            return Ok(());
        }
        let new_hard_state = self.pending_hard_state.unwrap_or(self.synced_hard_state);

        // Ordering: entries before the hard state of the same batch. A write
        // torn by a power cut keeps a prefix of the batch, so a commit index
        // (or vote) is never kept without the entries it covers: a commit
        // index over stale entries would apply them after a restart. (On an
        // error below the `Wal` is poisoned: the buffer's state no longer
        // matters.)
        let mut batch = std::mem::take(&mut self.pending_entry_records);
        if hard_state_changed {
            encode_hard_state_record(&new_hard_state, &mut batch)?;
        }
        let roll = self.segment_len_bytes > 0
            && self.segment_len_bytes + batch.len() as u64 > self.options.segment_size_bytes;
        if roll {
            self.roll_segment()?;
            // Each segment starts with the hard state (module doc): the one
            // already durable; a changed one follows the entries.
            let mut first = Vec::with_capacity(batch.len() + 64);
            encode_hard_state_record(&self.synced_hard_state, &mut first)?;
            first.extend_from_slice(&batch);
            self.write_and_sync(&first)?;
        } else {
            self.write_and_sync(&batch)?;
        }
        // The buffer is kept for the next batch, unless a large one left it big.
        batch.clear();
        if batch.capacity() > KEPT_BUFFER_BYTES {
            batch = Vec::new();
        }
        self.pending_entry_records = batch;

        self.segment_max_index = self.segment_max_index.max(self.pending_max_index);
        self.synced_hard_state = new_hard_state;
        self.pending_hard_state = None;
        self.pending_max_index = LogIndex(0);
        Ok(())
    }
}

impl LogStore for Wal {
    /// Buffers `entries`; see [`LogStore::append`].
    ///
    /// # Errors
    /// [`WalError::Poisoned`] after an earlier failure;
    /// [`WalError::RecordTooLarge`] if one entry encodes to more than
    /// [`MAX_RECORD_PAYLOAD_BYTES`] (nothing is buffered then).
    ///
    /// # Panics
    /// If `entries` are not contiguous and ascending, or would leave a gap
    /// after the last index, or start at index 0: a caller bug.
    fn append(&mut self, entries: &[Entry]) -> Result<(), WalError> {
        self.check_usable()?;
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok(());
        };
        assert_appendable(self.last_index, entries);
        encode_entries_records(entries, &mut self.pending_entry_records)?;
        self.pending_max_index = self.pending_max_index.max(last.index);
        self.last_index = LogIndex(first.index.0 + entries.len() as u64 - 1);
        Ok(())
    }

    fn set_hard_state(&mut self, hard_state: HardState) -> Result<(), WalError> {
        self.check_usable()?;
        self.pending_hard_state = Some(hard_state);
        Ok(())
    }

    /// Writes and fdatasyncs everything buffered; see the module doc.
    ///
    /// # Errors
    /// [`WalError::Io`] if the write, the fsync, or creating a new segment
    /// fails; the `Wal` is then poisoned and the node must stop.
    /// [`WalError::Poisoned`] after an earlier failure.
    fn sync(&mut self) -> Result<(), WalError> {
        self.fatal_on_error(Wal::sync_buffered)
    }
}

/// Panics unless `entries` can follow a log ending at `last_index`.
pub(crate) fn assert_appendable(last_index: LogIndex, entries: &[Entry]) {
    let Some(first) = entries.first() else {
        return;
    };
    assert!(
        first.index.0 >= 1 && first.index.0 <= last_index.0 + 1,
        "append at index {} would leave a gap after last index {}",
        first.index,
        last_index
    );
    for pair in entries.windows(2) {
        assert!(
            pair[1].index.0 == pair[0].index.0 + 1,
            "appended entries are not contiguous: index {} follows {}",
            pair[1].index,
            pair[0].index
        );
    }
}

// ---------------------------------------------------------------------------
// Record framing

fn push_record(kind: u8, payload: &[u8], out: &mut Vec<u8>) {
    let header = out.len();
    out.resize(header + RECORD_HEADER_LEN_BYTES, 0);
    out.extend_from_slice(payload);
    let end = out.len();
    fill_record_header(kind, out, header, end);
}

fn encode_hard_state_record(hard_state: &HardState, out: &mut Vec<u8>) -> Result<(), WalError> {
    let payload = postcard::to_stdvec(hard_state).map_err(|source| WalError::Encode { source })?;
    push_record(KIND_HARD_STATE, &payload, out);
    Ok(())
}

/// Appends `entries` to `out` framed as as few records as fit
/// [`MAX_RECORD_PAYLOAD_BYTES`]; on an error `out` is as it was.
///
/// Each entry is encoded straight into `out` behind its record's header,
/// which is filled in once the record is closed: no buffer per entry and no
/// second copy of the payloads (this was a third of a follower's WAL thread
/// at SET `-P 16`).
fn encode_entries_records(entries: &[Entry], out: &mut Vec<u8>) -> Result<(), WalError> {
    let start = out.len();
    // The open record's header starts here; its payload follows.
    let mut record = start;
    out.resize(record + RECORD_HEADER_LEN_BYTES, 0);
    for entry in entries {
        let at = out.len();
        *out = crate::encode::append(entry, std::mem::take(out));
        let len_bytes = out.len() - at;
        if len_bytes > MAX_RECORD_PAYLOAD_BYTES {
            out.truncate(start);
            return Err(WalError::RecordTooLarge {
                index: entry.index,
                len_bytes,
                max_bytes: MAX_RECORD_PAYLOAD_BYTES,
            });
        }
        let payload_start = record + RECORD_HEADER_LEN_BYTES;
        if at > payload_start && out.len() - payload_start > MAX_RECORD_PAYLOAD_BYTES {
            // This entry opens the next record: close the open one before it
            // and make room for the new header.
            fill_record_header(KIND_ENTRIES, out, record, at);
            out.splice(at..at, [0u8; RECORD_HEADER_LEN_BYTES]);
            record = at;
        }
    }
    let end = out.len();
    if end > record + RECORD_HEADER_LEN_BYTES {
        fill_record_header(KIND_ENTRIES, out, record, end);
    } else {
        out.truncate(record);
    }
    Ok(())
}

/// Writes the header at `out[header..]` of the record whose payload runs
/// from after it to `end`.
fn fill_record_header(kind: u8, out: &mut [u8], header: usize, end: usize) {
    let payload = &out[header + RECORD_HEADER_LEN_BYTES..end];
    let crc = crc32c::crc32c_append(crc32c::crc32c(&[kind]), payload);
    // payload.len() <= MAX_RECORD_PAYLOAD_BYTES < u32::MAX, checked by the caller.
    let len = (payload.len() as u32).to_le_bytes();
    out[header..header + 4].copy_from_slice(&len);
    out[header + 4..header + 8].copy_from_slice(&crc.to_le_bytes());
    out[header + 8] = kind;
}

/// One record read from a buffer.
enum Frame<'a> {
    /// Well framed, checksum correct.
    Valid {
        kind: u8,
        payload: &'a [u8],
        next_offset: usize,
    },
    /// Not a record.
    Bad(BadFrame),
}

/// Why the bytes at an offset are not a record. Cheap to build: the tail scan
/// tries every offset.
#[derive(Clone, Copy, Debug)]
enum BadFrame {
    ShortHeader {
        have_bytes: usize,
    },
    ZeroLength,
    TooLong {
        len_bytes: usize,
    },
    PastEnd {
        len_bytes: usize,
        available_bytes: usize,
    },
    Checksum {
        stored: u32,
        computed: u32,
    },
}

impl std::fmt::Display for BadFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            BadFrame::ShortHeader { have_bytes } => write!(
                f,
                "incomplete record header ({have_bytes} of {RECORD_HEADER_LEN_BYTES} bytes)"
            ),
            BadFrame::ZeroLength => write!(f, "zero record length"),
            BadFrame::TooLong { len_bytes } => write!(
                f,
                "record length {len_bytes} exceeds maximum {MAX_RECORD_PAYLOAD_BYTES}"
            ),
            BadFrame::PastEnd {
                len_bytes,
                available_bytes,
            } => write!(
                f,
                "record length {len_bytes} runs past end of file ({available_bytes} bytes left)"
            ),
            BadFrame::Checksum { stored, computed } => write!(
                f,
                "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
        }
    }
}

/// Reads the record at `offset`. Never allocates from the length field.
fn read_frame(bytes: &[u8], offset: usize) -> Frame<'_> {
    let remaining = &bytes[offset.min(bytes.len())..];
    if remaining.len() < RECORD_HEADER_LEN_BYTES {
        return Frame::Bad(BadFrame::ShortHeader {
            have_bytes: remaining.len(),
        });
    }
    let len_bytes = u32::from_le_bytes([remaining[0], remaining[1], remaining[2], remaining[3]]);
    let stored = u32::from_le_bytes([remaining[4], remaining[5], remaining[6], remaining[7]]);
    let kind = remaining[8];
    let len_bytes = len_bytes as usize;
    if len_bytes == 0 {
        // Payloads are never empty; usually zero fill (replay says so).
        return Frame::Bad(BadFrame::ZeroLength);
    }
    if len_bytes > MAX_RECORD_PAYLOAD_BYTES {
        return Frame::Bad(BadFrame::TooLong { len_bytes });
    }
    let available_bytes = remaining.len() - RECORD_HEADER_LEN_BYTES;
    if len_bytes > available_bytes {
        return Frame::Bad(BadFrame::PastEnd {
            len_bytes,
            available_bytes,
        });
    }
    let payload = &remaining[RECORD_HEADER_LEN_BYTES..RECORD_HEADER_LEN_BYTES + len_bytes];
    let computed = crc32c::crc32c_append(crc32c::crc32c(&[kind]), payload);
    if computed != stored {
        return Frame::Bad(BadFrame::Checksum { stored, computed });
    }
    Frame::Valid {
        kind,
        payload,
        next_offset: offset + RECORD_HEADER_LEN_BYTES + len_bytes,
    }
}

/// The first offset at or after `start` holding a valid record, if any.
fn find_valid_frame(bytes: &[u8], start: usize) -> Option<usize> {
    (start..bytes.len()).find(|&offset| matches!(read_frame(bytes, offset), Frame::Valid { .. }))
}

fn encode_log_reset_record(index: LogIndex, term: Term, out: &mut Vec<u8>) -> Result<(), WalError> {
    let payload =
        postcard::to_stdvec(&(index, term)).map_err(|source| WalError::Encode { source })?;
    push_record(KIND_LOG_RESET, &payload, out);
    Ok(())
}

// ---------------------------------------------------------------------------
// Replay

/// A torn tail found in the last segment.
struct TornTail {
    offset: u64,
    /// One past the last non-zero byte of the file (`offset` for a zero tail).
    garbage_end: u64,
    reason: String,
}

/// What replaying one segment found.
struct SegmentEnd {
    torn: Option<TornTail>,
    max_index: LogIndex,
}

/// The log and hard state rebuilt record by record.
struct Replay {
    snapshot: Option<SnapshotMeta>,
    /// Entries at or below this index are covered by the snapshot.
    base: u64,
    hard_state: HardState,
    /// Contiguous from `base + 1`.
    entries: Vec<Entry>,
    /// Term of the entry at `base` in the log as replayed so far, if any.
    term_at_base: Option<Term>,
}

impl Replay {
    fn new(snapshot: Option<&SnapshotMeta>) -> Replay {
        Replay {
            base: snapshot.map_or(0, |s| s.last_included_index.0),
            snapshot: snapshot.cloned(),
            hard_state: HardState::default(),
            entries: Vec::new(),
            term_at_base: None,
        }
    }

    fn last_index(&self) -> u64 {
        self.base + self.entries.len() as u64
    }

    /// Applies one valid record; returns the highest index it names, or why
    /// it makes no sense.
    fn apply(&mut self, kind: u8, payload: &[u8]) -> Result<LogIndex, String> {
        match kind {
            KIND_HARD_STATE => {
                self.hard_state = decode_exact::<HardState>(payload, "hard state")?;
                Ok(LogIndex(0))
            }
            KIND_ENTRIES => self.apply_entries(payload),
            KIND_LOG_RESET => {
                let (index, term) = decode_exact::<(LogIndex, Term)>(payload, "log reset")?;
                if index.0 > self.base {
                    return Err(format!(
                        "log reset to index {index}, but the snapshot loaded covers only \
                         through {} (the installed snapshot is missing or damaged)",
                        self.base
                    ));
                }
                self.entries.clear();
                self.term_at_base = (index.0 == self.base).then_some(term);
                Ok(index)
            }
            other => Err(format!("unknown record kind {other}")),
        }
    }

    fn apply_entries(&mut self, payload: &[u8]) -> Result<LogIndex, String> {
        let mut rest = payload;
        let mut previous: Option<u64> = None;
        while !rest.is_empty() {
            let (entry, tail) = postcard::take_from_bytes::<Entry>(rest)
                .map_err(|e| format!("undecodable entry: {e}"))?;
            rest = tail;
            let index = entry.index.0;
            match previous {
                None => {
                    let last_index = self.last_index();
                    if index == 0 || index > last_index + 1 {
                        return Err(format!(
                            "entries record starts at index {index}, log ends at {last_index}"
                        ));
                    }
                    // A later append at a stored index replaces the suffix (§5.3).
                    let keep = index.saturating_sub(self.base + 1);
                    self.entries.truncate(keep as usize);
                    if index <= self.base {
                        self.term_at_base = None;
                    }
                }
                Some(previous) if index != previous + 1 => {
                    return Err(format!(
                        "entries record not contiguous: index {index} after {previous}"
                    ));
                }
                Some(_) => {}
            }
            previous = Some(index);
            if index == self.base {
                self.term_at_base = Some(entry.term);
            } else if index > self.base {
                self.entries.push(entry);
            }
        }
        previous
            .map(LogIndex)
            .ok_or_else(|| "empty entries record".to_string())
    }

    fn finish(mut self, dir: &Path) -> Result<InitialState, WalError> {
        if let (Some(snapshot), Some(term)) = (&self.snapshot, self.term_at_base) {
            if term != snapshot.last_included_term && !self.entries.is_empty() {
                // §7: the log does not continue this snapshot; discard it.
                warn!(
                    dir = %dir.display(),
                    index = snapshot.last_included_index.0,
                    log_term = term.0,
                    snapshot_term = snapshot.last_included_term.0,
                    discarded = self.entries.len(),
                    "log entry at the snapshot index has another term; discarding the log after it"
                );
                self.entries.clear();
            }
        }
        Ok(InitialState {
            hard_state: self.hard_state,
            snapshot: self.snapshot,
            entries: self.entries,
        })
    }
}

fn decode_exact<T: serde::de::DeserializeOwned>(payload: &[u8], what: &str) -> Result<T, String> {
    let (value, rest) = postcard::take_from_bytes::<T>(payload)
        .map_err(|e| format!("undecodable {what} record: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("{what} record has {} trailing bytes", rest.len()));
    }
    Ok(value)
}

/// Applies every record of one segment to `replay`. Returns the torn tail to
/// repair, if this is the last segment and it has one.
fn replay_segment(
    path: &Path,
    bytes: &[u8],
    is_last: bool,
    replay: &mut Replay,
) -> Result<SegmentEnd, WalError> {
    let corrupt = |offset: usize, reason: String| WalError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    let mut max_index = LogIndex(0);
    let mut offset = 0;
    while offset < bytes.len() {
        match read_frame(bytes, offset) {
            Frame::Valid {
                kind,
                payload,
                next_offset,
            } => {
                let record_max = replay
                    .apply(kind, payload)
                    .map_err(|reason| corrupt(offset, reason))?;
                max_index = max_index.max(record_max);
                offset = next_offset;
            }
            Frame::Bad(bad) => {
                let reason = bad.to_string();
                if !is_last {
                    return Err(corrupt(
                        offset,
                        format!("{reason} in a segment that is not the last"),
                    ));
                }
                // A valid record starts with a non-zero length, so none can
                // start in the zero fill after the last non-zero byte.
                let garbage_end = bytes
                    .iter()
                    .rposition(|&b| b != 0)
                    .map_or(0, |last| last + 1)
                    .max(offset);
                if garbage_end == offset {
                    return Ok(SegmentEnd {
                        torn: Some(TornTail {
                            offset: offset as u64,
                            garbage_end: offset as u64,
                            reason: "zero-filled tail".to_string(),
                        }),
                        max_index,
                    });
                }
                if let Some(valid_offset) = find_valid_frame(&bytes[..garbage_end], offset + 1) {
                    return Err(corrupt(
                        offset,
                        format!("{reason}, but a valid record follows at offset {valid_offset}"),
                    ));
                }
                return Ok(SegmentEnd {
                    torn: Some(TornTail {
                        offset: offset as u64,
                        garbage_end: garbage_end as u64,
                        reason,
                    }),
                    max_index,
                });
            }
        }
    }
    Ok(SegmentEnd {
        torn: None,
        max_index,
    })
}

// ---------------------------------------------------------------------------
// Files and directories

fn io_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> WalError + 'a {
    move |source| WalError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!(
        "{SEGMENT_PREFIX}{seq:0width$}{SEGMENT_SUFFIX}",
        width = SEGMENT_SEQ_DIGITS
    ))
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name
        .strip_prefix(SEGMENT_PREFIX)?
        .strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != SEGMENT_SEQ_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The segments in `dir`, by sequence; a gap in the sequence is corruption.
fn list_segments(fs: &dyn StorageFs, dir: &Path) -> Result<Vec<(u64, PathBuf)>, WalError> {
    let mut segments: Vec<(u64, PathBuf)> = fs
        .list(dir)
        .map_err(io_error("list directory", dir))?
        .into_iter()
        .filter_map(|name| parse_segment_name(&name).map(|seq| (seq, dir.join(name))))
        .collect();
    segments.sort_unstable_by_key(|(seq, _)| *seq);
    for pair in segments.windows(2) {
        let expected = pair[0].0 + 1;
        if pair[1].0 != expected {
            return Err(WalError::Corrupt {
                path: pair[1].1.clone(),
                offset: 0,
                reason: format!(
                    "segment sequence gap: expected {} before it",
                    segment_path(dir, expected).display()
                ),
            });
        }
    }
    Ok(segments)
}

fn sync_dir(fs: &dyn StorageFs, dir: &Path) -> Result<(), WalError> {
    fs.sync_dir(dir).map_err(io_error("fsync directory", dir))
}

fn create_dir_durably(fs: &dyn StorageFs, dir: &Path) -> Result<(), WalError> {
    if fs.is_dir(dir) {
        return Ok(());
    }
    fs.create_dir_all(dir)
        .map_err(io_error("create directory", dir))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(fs, parent)?;
    }
    Ok(())
}

/// Creates an empty segment and makes its directory entry durable.
fn create_segment_file(fs: &dyn StorageFs, dir: &Path, path: &Path) -> Result<(), WalError> {
    fs.create_new(path)
        .map_err(io_error("create segment", path))?;
    // Ordering: the directory entry is durable before any record is written,
    // so a synced record can never sit in a file that vanishes on crash.
    sync_dir(fs, dir)
}

/// Writes zeros over `[from, to)`.
fn write_zeros(
    file: &mut dyn StorageFile,
    path: &Path,
    from: u64,
    to: u64,
) -> Result<(), WalError> {
    let zeros = vec![0u8; ZERO_CHUNK_BYTES.min(to.saturating_sub(from) as usize)];
    let mut offset = from;
    while offset < to {
        let n = (to - offset).min(zeros.len() as u64) as usize;
        file.write_at(offset, &zeros[..n])
            .map_err(io_error("zero-fill segment", path))?;
        offset += n as u64;
    }
    Ok(())
}

struct RepairedTail {
    cleared_bytes: u64,
    allocated_bytes: u64,
}

/// Makes the last segment end at `torn.offset` (module doc, "Recovery").
fn repair_torn_tail(
    fs: &dyn StorageFs,
    path: &Path,
    torn: &TornTail,
    file_len: u64,
    options: WalOptions,
) -> Result<RepairedTail, WalError> {
    let preallocated = options.preallocate_bytes > 0;
    if preallocated && torn.garbage_end == torn.offset {
        // The expected zero fill of a preallocated segment.
        return Ok(RepairedTail {
            cleared_bytes: 0,
            allocated_bytes: file_len,
        });
    }
    warn!(
        path = %path.display(),
        offset = torn.offset,
        reason = %torn.reason,
        "repairing the torn tail of the last WAL segment"
    );
    let mut file = fs
        .open(path)
        .map_err(io_error("open segment to repair", path))?;
    let repaired = if preallocated {
        write_zeros(&mut *file, path, torn.offset, torn.garbage_end)?;
        RepairedTail {
            cleared_bytes: torn.garbage_end - torn.offset,
            allocated_bytes: file_len,
        }
    } else {
        file.set_len(torn.offset)
            .map_err(io_error("truncate segment", path))?;
        RepairedTail {
            cleared_bytes: file_len - torn.offset,
            allocated_bytes: torn.offset,
        }
    };
    file.sync_data()
        .map_err(io_error("fsync repaired segment", path))?;
    Ok(repaired)
}

/// Takes the exclusive lock on `dir/LOCK`, held until the returned guard drops.
fn lock_dir(fs: &dyn StorageFs, dir: &Path) -> Result<FsLock, WalError> {
    let path = dir.join(LOCK_FILE_NAME);
    match fs.lock(&path) {
        Ok(Some(lock)) => Ok(lock),
        Ok(None) => Err(WalError::Locked { path }),
        Err(source) => Err(WalError::Io {
            op: "lock",
            path,
            source,
        }),
    }
}

#[cfg(test)]
mod tests;
