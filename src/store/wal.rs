//! The write-ahead log: the durable Raft log and hard state (Figure 2,
//! "persistent state on all servers") in segmented, append-only files.
//!
//! # What it owns
//!
//! One data directory: the segment files `wal-<16-digit sequence>.log` and the
//! `LOCK` file. Other files in the directory (snapshots, later) are ignored.
//! It does blocking file I/O: call it from a dedicated thread or
//! `spawn_blocking`, never from an async task directly.
//!
//! # On-disk format
//!
//! A segment is a sequence of records, nothing else (no file header):
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
//! - `len` is never 0 and never above [`MAX_RECORD_PAYLOAD_BYTES`]; a reader
//!   never allocates from it (segments are read whole, `len` is checked against
//!   the bytes the file holds).
//! - A new record kind is the way to evolve the format; an unknown kind with a
//!   valid checksum is reported as corruption, never skipped.
//!
//! Segment sequence numbers start at 1 and have no gaps. A new segment is
//! started when the current one would grow past
//! [`WalOptions::segment_size_bytes`]; every segment after the first begins with
//! a hard-state record, so a segment never depends on an older one for the hard
//! state (log compaction can delete whole old segments).
//!
//! # Invariants
//!
//! - Replaying all records in order gives the log (contiguous from index 1) and
//!   the hard state: the last hard-state record wins; an entries record whose
//!   first index is already in the log replaces the log from that index
//!   (a follower's conflicting suffix, §5.3).
//! - Only the last segment is ever written; older ones are immutable and fully
//!   synced.
//! - At most one process uses a directory: `flock(LOCK_EX | LOCK_NB)` on `LOCK`
//!   is held for the life of the [`Wal`].
//!
//! # Durability contract
//!
//! [`LogStore::append`] and [`LogStore::set_hard_state`] only buffer in memory.
//! [`LogStore::sync`] does one `write` of everything buffered and one
//! `fdatasync` (a sync that starts a new segment first creates the file and
//! fsyncs the directory); when it returns `Ok`, all of it survives a crash.
//! A hard state set several times between syncs is written once. Group commit
//! comes from the driver: everything it appends while the previous sync runs is
//! covered by the next one.
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
//!   torn write that was never acknowledged: the file is truncated to the start
//!   of the bad record, fsynced, and a `warn!` names the file and offset.
//! - A bad record followed by any valid record, a bad record in any segment but
//!   the last, a record that decodes to nonsense, or a missing segment is
//!   corruption of acknowledged data: `open` fails with [`WalError::Corrupt`]
//!   naming the file and byte offset. Nothing is skipped silently.
//!
//!   Repair: stop the node, move the data directory aside (keep it for
//!   inspection), start the node with an empty directory, and let it catch up
//!   from the leader (log replication or InstallSnapshot). Do this on one node
//!   at a time so a majority keeps every committed entry.
//!
//!   "Valid record after it" is checked at every byte offset after the bad
//!   record (a corrupt length field hides where the next record starts); an
//!   all-zero remainder is recognised without scanning.
//!
//!   A filesystem may persist the sectors of an unsynced write out of order, so
//!   a crash can leave a hole followed by valid records of the same,
//!   never-acknowledged write; this reads as corruption. That errs on the safe
//!   side: the operator repairs instead of the node silently losing data.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use super::{LogStore, WalError};
use crate::raft::{Entry, HardState, InitialState, LogIndex};

/// Default size past which a new segment is started.
pub const DEFAULT_SEGMENT_SIZE_BYTES: u64 = 64 * 1024 * 1024;

/// Largest record payload written or accepted. Bounds what a corrupt length
/// field can claim and what a single entry may weigh once encoded.
pub const MAX_RECORD_PAYLOAD_BYTES: usize = 64 * 1024 * 1024;

/// `len` (4) + `crc` (4) + `kind` (1).
const RECORD_HEADER_LEN_BYTES: usize = 9;

/// The lock file's name inside the data directory.
pub const LOCK_FILE_NAME: &str = "LOCK";

const SEGMENT_PREFIX: &str = "wal-";
const SEGMENT_SUFFIX: &str = ".log";
const SEGMENT_SEQ_DIGITS: usize = 16;

const KIND_HARD_STATE: u8 = 1;
const KIND_ENTRIES: u8 = 2;

/// Tunables of the WAL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalOptions {
    /// A new segment is started when writing a batch would take the current
    /// one past this size (a batch is never split across segments).
    pub segment_size_bytes: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size_bytes: DEFAULT_SEGMENT_SIZE_BYTES,
        }
    }
}

/// Counters since [`Wal::open`], for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Bytes handed to `write` (records, including headers).
    pub bytes_written_total: u64,
    /// `fdatasync` calls on segments (one per non-empty [`LogStore::sync`]).
    pub syncs_total: u64,
    /// Segment files created.
    pub segments_created_total: u64,
    /// Torn tail bytes truncated at open.
    pub torn_tail_bytes_truncated: u64,
}

/// The file-backed [`LogStore`]. See the module doc for format and contract.
pub struct Wal {
    dir: PathBuf,
    options: WalOptions,
    /// Held for the `Wal`'s life; closing it releases the `flock`.
    _lock_file: File,
    /// The last segment, opened for append.
    segment: File,
    segment_path: PathBuf,
    segment_seq: u64,
    /// Bytes in the last segment, written and synced.
    segment_len_bytes: u64,
    /// The hard state as of the last successful sync.
    synced_hard_state: HardState,
    /// A hard state set since the last sync; only the latest is written.
    pending_hard_state: Option<HardState>,
    /// Framed entries records appended since the last sync.
    pending_entry_records: Vec<u8>,
    /// Last index of the log including unsynced appends (0: empty log).
    last_index: LogIndex,
    /// Set by a failed write or fsync; see the module doc.
    poisoned: bool,
    stats: WalStats,
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
    /// returns it with the durable state it holds.
    ///
    /// # Errors
    /// [`WalError::Locked`] if another `Wal` holds the directory,
    /// [`WalError::Corrupt`] for damage recovery must not repair (module doc),
    /// [`WalError::Io`] for any failed file operation.
    pub fn open(dir: &Path) -> Result<(Wal, InitialState), WalError> {
        Wal::open_with_options(dir, WalOptions::default())
    }

    /// Like [`Wal::open`] with explicit options.
    ///
    /// # Errors
    /// As [`Wal::open`].
    pub fn open_with_options(
        dir: &Path,
        options: WalOptions,
    ) -> Result<(Wal, InitialState), WalError> {
        create_dir_durably(dir)?;
        let lock_file = lock_dir(dir)?;

        let segments = list_segments(dir)?;
        let mut state = InitialState::default();
        let mut stats = WalStats::default();
        let mut last_segment: Option<(u64, PathBuf, u64)> = None;

        for (position, (seq, path)) in segments.iter().enumerate() {
            let is_last = position + 1 == segments.len();
            let bytes = fs::read(path).map_err(io_error("read segment", path))?;
            let mut len_bytes = bytes.len() as u64;
            if let Some(torn) = replay_segment(path, &bytes, is_last, &mut state)? {
                truncate_torn_tail(path, &torn)?;
                stats.torn_tail_bytes_truncated = len_bytes - torn.offset;
                len_bytes = torn.offset;
            }
            if is_last {
                last_segment = Some((*seq, path.clone(), len_bytes));
            }
        }

        let (segment_seq, segment_path, segment_len_bytes) = match last_segment {
            Some(last) => last,
            None => {
                let path = segment_path(dir, 1);
                create_segment_file(dir, &path)?;
                stats.segments_created_total += 1;
                (1, path, 0)
            }
        };
        let segment = OpenOptions::new()
            .append(true)
            .open(&segment_path)
            .map_err(io_error("open segment for append", &segment_path))?;

        let last_index = state.entries.last().map_or(LogIndex(0), |e| e.index);
        info!(
            dir = %dir.display(),
            segments = segments.len().max(1),
            last_index = last_index.0,
            term = state.hard_state.term.0,
            commit_index = state.hard_state.commit_index.0,
            "opened write-ahead log"
        );
        let wal = Wal {
            dir: dir.to_path_buf(),
            options,
            _lock_file: lock_file,
            segment,
            segment_path,
            segment_seq,
            segment_len_bytes,
            synced_hard_state: state.hard_state,
            pending_hard_state: None,
            pending_entry_records: Vec::new(),
            last_index,
            poisoned: false,
            stats,
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

    /// Starts segment `segment_seq + 1`. The previous segment needs no fsync:
    /// every byte written to it was followed by `fdatasync` before `sync`
    /// returned.
    fn roll_segment(&mut self) -> Result<(), WalError> {
        let seq = self.segment_seq + 1;
        let path = segment_path(&self.dir, seq);
        create_segment_file(&self.dir, &path)?;
        let segment = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_error("open segment for append", &path))?;
        info!(path = %path.display(), "started new WAL segment");
        self.segment = segment;
        self.segment_path = path;
        self.segment_seq = seq;
        self.segment_len_bytes = 0;
        self.stats.segments_created_total += 1;
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

        let mut batch = Vec::with_capacity(self.pending_entry_records.len() + 64);
        if hard_state_changed {
            encode_hard_state_record(&new_hard_state, &mut batch)?;
        }
        let batch_len_bytes = (batch.len() + self.pending_entry_records.len()) as u64;
        let roll = self.segment_len_bytes > 0
            && self.segment_len_bytes + batch_len_bytes > self.options.segment_size_bytes;
        if roll {
            self.roll_segment()?;
            if !hard_state_changed {
                // Each segment starts with the hard state (module doc).
                encode_hard_state_record(&new_hard_state, &mut batch)?;
            }
        }
        batch.extend_from_slice(&self.pending_entry_records);

        // Ordering: one write, then one fdatasync; only after both succeed is
        // the batch reported durable (the caller may then send votes/acks).
        self.segment
            .write_all(&batch)
            .map_err(io_error("write segment", &self.segment_path))?;
        self.stats.bytes_written_total += batch.len() as u64;
        self.segment
            .sync_data()
            .map_err(io_error("fdatasync segment", &self.segment_path))?;
        self.stats.syncs_total += 1;

        self.segment_len_bytes += batch.len() as u64;
        self.synced_hard_state = new_hard_state;
        self.pending_hard_state = None;
        self.pending_entry_records.clear();
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
        let Some(first) = entries.first() else {
            return Ok(());
        };
        assert_appendable(self.last_index, entries);
        let mut records = Vec::new();
        encode_entries_records(entries, &mut records)?;
        self.pending_entry_records.extend_from_slice(&records);
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
        self.check_usable()?;
        let result = self.sync_buffered();
        if result.is_err() {
            // Never retry: a failed fsync may have dropped the dirty pages.
            self.poisoned = true;
        }
        result
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
    let mut crc = crc32c::crc32c(&[kind]);
    crc = crc32c::crc32c_append(crc, payload);
    // payload.len() <= MAX_RECORD_PAYLOAD_BYTES < u32::MAX, checked by callers.
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
}

fn encode_hard_state_record(hard_state: &HardState, out: &mut Vec<u8>) -> Result<(), WalError> {
    let payload = postcard::to_stdvec(hard_state).map_err(|source| WalError::Encode { source })?;
    push_record(KIND_HARD_STATE, &payload, out);
    Ok(())
}

/// Frames `entries` as as few records as fit [`MAX_RECORD_PAYLOAD_BYTES`].
fn encode_entries_records(entries: &[Entry], out: &mut Vec<u8>) -> Result<(), WalError> {
    let mut payload = Vec::new();
    for entry in entries {
        let encoded = postcard::to_stdvec(entry).map_err(|source| WalError::Encode { source })?;
        if encoded.len() > MAX_RECORD_PAYLOAD_BYTES {
            return Err(WalError::RecordTooLarge {
                index: entry.index,
                len_bytes: encoded.len(),
                max_bytes: MAX_RECORD_PAYLOAD_BYTES,
            });
        }
        if !payload.is_empty() && payload.len() + encoded.len() > MAX_RECORD_PAYLOAD_BYTES {
            push_record(KIND_ENTRIES, &payload, out);
            payload.clear();
        }
        payload.extend_from_slice(&encoded);
    }
    if !payload.is_empty() {
        push_record(KIND_ENTRIES, &payload, out);
    }
    Ok(())
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

// ---------------------------------------------------------------------------
// Replay

/// A torn tail found in the last segment.
struct TornTail {
    offset: u64,
    reason: String,
}

/// Applies every record of one segment to `state`. Returns the torn tail to
/// truncate, if this is the last segment and it has one.
fn replay_segment(
    path: &Path,
    bytes: &[u8],
    is_last: bool,
    state: &mut InitialState,
) -> Result<Option<TornTail>, WalError> {
    let corrupt = |offset: usize, reason: String| WalError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    let mut offset = 0;
    while offset < bytes.len() {
        match read_frame(bytes, offset) {
            Frame::Valid {
                kind,
                payload,
                next_offset,
            } => {
                apply_record(kind, payload, state).map_err(|reason| corrupt(offset, reason))?;
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
                if bytes[offset..].iter().all(|&b| b == 0) {
                    // Preallocated or zeroed blocks after a crash: nothing
                    // valid can follow, and scanning them would be quadratic.
                    return Ok(Some(TornTail {
                        offset: offset as u64,
                        reason: "zero-filled tail".to_string(),
                    }));
                }
                if let Some(valid_offset) = find_valid_frame(bytes, offset + 1) {
                    return Err(corrupt(
                        offset,
                        format!("{reason}, but a valid record follows at offset {valid_offset}"),
                    ));
                }
                return Ok(Some(TornTail {
                    offset: offset as u64,
                    reason,
                }));
            }
        }
    }
    Ok(None)
}

/// Applies one valid record; `Err` says why it makes no sense.
fn apply_record(kind: u8, payload: &[u8], state: &mut InitialState) -> Result<(), String> {
    match kind {
        KIND_HARD_STATE => {
            let (hard_state, rest) = postcard::take_from_bytes::<HardState>(payload)
                .map_err(|e| format!("undecodable hard state record: {e}"))?;
            if !rest.is_empty() {
                return Err(format!(
                    "hard state record has {} trailing bytes",
                    rest.len()
                ));
            }
            state.hard_state = hard_state;
            Ok(())
        }
        KIND_ENTRIES => {
            let mut rest = payload;
            let mut first = true;
            while !rest.is_empty() {
                let (entry, tail) = postcard::take_from_bytes::<Entry>(rest)
                    .map_err(|e| format!("undecodable entry: {e}"))?;
                rest = tail;
                let last_index = state.entries.len() as u64;
                let index = entry.index.0;
                if first {
                    if index == 0 || index > last_index + 1 {
                        return Err(format!(
                            "entries record starts at index {index}, log ends at {last_index}"
                        ));
                    }
                    // A later append at a stored index replaces the suffix (§5.3).
                    state.entries.truncate((index - 1) as usize);
                    first = false;
                } else if index != last_index + 1 {
                    return Err(format!(
                        "entries record not contiguous: index {index} after {last_index}"
                    ));
                }
                state.entries.push(entry);
            }
            if first {
                return Err("empty entries record".to_string());
            }
            Ok(())
        }
        other => Err(format!("unknown record kind {other}")),
    }
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
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, WalError> {
    let mut segments = Vec::new();
    for dir_entry in fs::read_dir(dir).map_err(io_error("list directory", dir))? {
        let dir_entry = dir_entry.map_err(io_error("list directory", dir))?;
        let name = dir_entry.file_name();
        if let Some(seq) = name.to_str().and_then(parse_segment_name) {
            segments.push((seq, dir_entry.path()));
        }
    }
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

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("fsync directory", dir))
}

fn create_dir_durably(dir: &Path) -> Result<(), WalError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Creates an empty segment and makes its directory entry durable.
fn create_segment_file(dir: &Path, path: &Path) -> Result<(), WalError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_error("create segment", path))?;
    // Ordering: the directory entry is durable before any record is written,
    // so a synced record can never sit in a file that vanishes on crash.
    sync_dir(dir)
}

fn truncate_torn_tail(path: &Path, torn: &TornTail) -> Result<(), WalError> {
    warn!(
        path = %path.display(),
        offset = torn.offset,
        reason = %torn.reason,
        "truncating torn tail of the last WAL segment"
    );
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_error("open segment to truncate", path))?;
    file.set_len(torn.offset)
        .map_err(io_error("truncate segment", path))?;
    file.sync_all()
        .map_err(io_error("fsync truncated segment", path))
}

/// Takes `flock(LOCK_EX | LOCK_NB)` on `dir/LOCK`; released when the returned
/// file is closed.
fn lock_dir(dir: &Path) -> Result<File, WalError> {
    let path = dir.join(LOCK_FILE_NAME);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_error("open lock file", &path))?;
    // SAFETY: the descriptor is valid while `file` lives; flock touches no
    // memory of ours.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let source = std::io::Error::last_os_error();
        if source.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(WalError::Locked { path });
        }
        return Err(WalError::Io {
            op: "flock",
            path,
            source,
        });
    }
    Ok(file)
}

#[cfg(test)]
mod tests;
