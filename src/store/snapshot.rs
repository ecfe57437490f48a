//! Snapshot files: the state machine's bytes as of a log index, written
//! atomically with checksums, streamed in and out in chunks.
//!
//! # What it owns
//!
//! The directory `<data_dir>/snapshots/`: finished snapshots
//! `snap-<last_included_index, 20 digits>-<last_included_term>.snap` and, while
//! one is written, a temp file `<final name>.tmp`. It never interprets the
//! payload (that is `kv/`) and never decides when to snapshot (the driver).
//! Blocking file I/O: call it from a dedicated thread or `spawn_blocking`.
//!
//! # On-disk format
//!
//! ```text
//! header   magic "DKVSNAP\x02" (8) | meta_len u32 LE | meta (postcard SnapshotMeta)
//!          | header_crc u32 LE            CRC32C over magic, meta_len, meta
//! payload  payload_len bytes, opaque      (the state machine's serialization)
//! trailer  payload_len u64 LE | payload_crc u32 LE (CRC32C of the payload)
//!          | magic "SEND" (4) | trailer_crc u32 LE   CRC32C over the 16 bytes before
//! ```
//!
//! Version 1 files (magic `DKVSNAP\x01`, whose meta listed fixed voters
//! instead of a membership) are still read, as naming no membership.
//!
//! `meta_len` is at most [`MAX_META_BYTES`] and must fit the file; the payload
//! length must equal what lies between header and trailer; the file name's
//! index and term must match the meta. A reader never allocates from a length
//! field beyond those bounds (payload chunks are at most the caller's chunk
//! size and never past the file).
//!
//! # Writing (ordering)
//!
//! [`SnapshotStore::begin`] (local snapshot) and
//! [`SnapshotStore::begin_receive`] (InstallSnapshot from the leader) return a
//! [`SnapshotWriter`] on a temp file; the payload is streamed with
//! [`SnapshotWriter::write_chunk`] (the state machine serializes incrementally,
//! so the map is never frozen for the whole write) or, when receiving,
//! [`SnapshotWriter::write_chunk_at`], which rejects a duplicate or
//! out-of-order chunk with [`SnapshotError::ChunkOffset`] instead of appending
//! it twice. [`SnapshotWriter::finish`]:
//!
//! 1. writes the trailer, `fdatasync`s the temp file;
//! 2. renames it to its final name, fsyncs the directory — only now does the
//!    snapshot exist after a crash;
//! 3. deletes all but the [`RETAINED_SNAPSHOTS`] newest snapshots, fsyncs the
//!    directory.
//!
//! A snapshot *received* from the leader is written the same way but under a
//! name of its own, `received-snap-….snap` ([`SnapshotStore::begin_receive`]),
//! which [`SnapshotStore::list`] and [`SnapshotStore::latest`] never show and
//! retention never counts: until the node installs it, it is input, not a
//! snapshot of ours. Finishing one deletes the other received files only.
//! Installing it ([`SnapshotStore::promote_received`], after its payload
//! decoded) renames it to its snapshot name and only then applies retention,
//! so retention never deletes the last good (loaded, taken or installed)
//! snapshot for one that is not installed, and a restart never loads one that
//! was not. Received files left by a crash are deleted by
//! [`SnapshotStore::open`] (the leader sends the snapshot again).
//!
//! Only after `finish` returns may the WAL be compacted
//! ([`super::Wal::compact`]) or reset ([`super::Wal::reset_to_snapshot`]).
//!
//! # Recovery
//!
//! Temp files are never valid: [`SnapshotStore::open`] deletes them.
//! [`SnapshotStore::latest`] checks snapshots newest first (header, trailer,
//! and the payload CRC over the whole file) and returns the first valid one; a
//! damaged one is reported with a `warn!` naming the file and the reason, and
//! the previous one is used. A bit flip anywhere in a file is therefore
//! detected and never served. [`SnapshotReader`] checks the payload CRC again
//! as it streams (the file may change under it); the state machine must only
//! install what it built once the reader reports the end of the payload.
//!
//! Repair: a damaged snapshot file is never rewritten. If no valid snapshot
//! continues the WAL, `Wal::open_with_snapshot` fails (`Corrupt`); move the
//! data directory aside and let the node catch up from the leader, one node at
//! a time.

use std::path::{Path, PathBuf};

use tracing::{info, warn};

use super::fs::{real_fs, SharedFs, StorageFile};
use crate::raft::{LogIndex, SnapshotMeta, Term};

/// The snapshot directory's name inside the data directory.
pub const SNAPSHOT_DIR_NAME: &str = "snapshots";
/// Finished snapshots kept; older ones are deleted.
pub const RETAINED_SNAPSHOTS: usize = 2;
/// Largest encoded [`SnapshotMeta`] accepted.
pub const MAX_META_BYTES: usize = 1024 * 1024;

/// Version 2: the meta records the membership (`SnapshotMeta::membership`).
const HEADER_MAGIC: &[u8; 8] = b"DKVSNAP\x02";
/// Version 1 (before membership changes): the meta listed the fixed voters.
/// Still read; its meta is taken as naming no membership (the bootstrap
/// voters of the config apply).
const HEADER_MAGIC_V1: &[u8; 8] = b"DKVSNAP\x01";

/// A version 1 meta, read for compatibility.
#[derive(serde::Deserialize)]
struct SnapshotMetaV1 {
    last_included_index: LogIndex,
    last_included_term: Term,
    #[allow(dead_code)]
    voters: Vec<crate::raft::NodeId>,
}

/// Decodes a header's meta of the given version; trailing bytes are an error.
fn decode_meta(v1: bool, bytes: &[u8]) -> Result<SnapshotMeta, String> {
    let (meta, tail) = if v1 {
        postcard::take_from_bytes::<SnapshotMetaV1>(bytes).map(|(m, tail)| {
            let meta = SnapshotMeta {
                last_included_index: m.last_included_index,
                last_included_term: m.last_included_term,
                membership: crate::raft::Membership::default(),
            };
            (meta, tail)
        })
    } else {
        postcard::take_from_bytes::<SnapshotMeta>(bytes)
    }
    .map_err(|e| format!("undecodable metadata: {e}"))?;
    if !tail.is_empty() {
        return Err(format!("metadata has {} trailing bytes", tail.len()));
    }
    Ok(meta)
}
const TRAILER_MAGIC: &[u8; 4] = b"SEND";
/// magic (8) + meta_len (4).
const HEADER_PREFIX_BYTES: usize = 12;
const HEADER_CRC_BYTES: usize = 4;
/// payload_len (8) + payload_crc (4) + magic (4) + trailer_crc (4).
const TRAILER_BYTES: usize = 20;
const NAME_PREFIX: &str = "snap-";
const NAME_SUFFIX: &str = ".snap";
const TMP_SUFFIX: &str = ".tmp";
const RECEIVED_PREFIX: &str = "received-";
const INDEX_DIGITS: usize = 20;
/// Payload bytes buffered by a writer before one write call.
const WRITE_BUFFER_BYTES: usize = 1024 * 1024;
/// Chunk size used to verify a payload CRC.
const VERIFY_CHUNK_BYTES: usize = 1024 * 1024;

/// Snapshot errors, each naming the file.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a valid snapshot.
    #[error("corrupt snapshot {path} at byte offset {offset}: {reason}")]
    Corrupt {
        /// The snapshot file.
        path: PathBuf,
        /// Byte offset in the file where the damage was found.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A received chunk does not start where the payload so far ends (a
    /// duplicate or out-of-order InstallSnapshot chunk); nothing was written.
    #[error("snapshot chunk for {path} at payload offset {offset}, expected offset {expected}")]
    ChunkOffset {
        /// The temp file being received.
        path: PathBuf,
        /// The chunk's offset.
        offset: u64,
        /// The payload length received so far.
        expected: u64,
    },
    /// Encoding the metadata failed.
    #[error("encoding snapshot metadata: {source}")]
    Encode {
        /// The encoder's error.
        source: postcard::Error,
    },
}

fn io_error<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> SnapshotError + 'a {
    move |source| SnapshotError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The file name of the snapshot for `meta`.
pub fn snapshot_file_name(meta: &SnapshotMeta) -> String {
    format!(
        "{NAME_PREFIX}{:0width$}-{}{NAME_SUFFIX}",
        meta.last_included_index.0,
        meta.last_included_term.0,
        width = INDEX_DIGITS
    )
}

/// The file name of a received, not yet installed snapshot for `meta`.
fn received_file_name(meta: &SnapshotMeta) -> String {
    format!("{RECEIVED_PREFIX}{}", snapshot_file_name(meta))
}

fn parse_name(name: &str) -> Option<(LogIndex, Term)> {
    let rest = name.strip_prefix(NAME_PREFIX)?.strip_suffix(NAME_SUFFIX)?;
    let (index, term) = rest.split_once('-')?;
    if index.len() != INDEX_DIGITS
        || !index.bytes().all(|b| b.is_ascii_digit())
        || term.is_empty()
        || !term.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some((LogIndex(index.parse().ok()?), Term(term.parse().ok()?)))
}

/// The snapshot directory of one node. See the module doc.
#[derive(Debug)]
pub struct SnapshotStore {
    fs: SharedFs,
    dir: PathBuf,
}

impl SnapshotStore {
    /// Opens (creating it) `<data_dir>/snapshots/` on the real filesystem and
    /// deletes leftover temp files.
    ///
    /// # Errors
    /// [`SnapshotError::Io`] if the directory cannot be created or listed.
    pub fn open(data_dir: &Path) -> Result<SnapshotStore, SnapshotError> {
        SnapshotStore::open_with(real_fs(), data_dir)
    }

    /// Like [`SnapshotStore::open`] on any filesystem.
    ///
    /// # Errors
    /// As [`SnapshotStore::open`].
    pub fn open_with(fs: SharedFs, data_dir: &Path) -> Result<SnapshotStore, SnapshotError> {
        let dir = data_dir.join(SNAPSHOT_DIR_NAME);
        if !fs.is_dir(&dir) {
            fs.create_dir_all(&dir)
                .map_err(io_error("create directory", &dir))?;
            fs.sync_dir(data_dir)
                .map_err(io_error("fsync directory", data_dir))?;
        }
        let store = SnapshotStore { fs, dir };
        let mut removed = false;
        for name in store.names()? {
            if name.ends_with(TMP_SUFFIX) || name.starts_with(RECEIVED_PREFIX) {
                let path = store.dir.join(&name);
                warn!(path = %path.display(), "deleting an unfinished snapshot");
                store
                    .fs
                    .remove(&path)
                    .map_err(io_error("delete unfinished snapshot", &path))?;
                removed = true;
            }
        }
        if removed {
            store.sync_dir()?;
        }
        Ok(store)
    }

    /// The snapshot directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn names(&self) -> Result<Vec<String>, SnapshotError> {
        self.fs
            .list(&self.dir)
            .map_err(io_error("list directory", &self.dir))
    }

    fn sync_dir(&self) -> Result<(), SnapshotError> {
        self.fs
            .sync_dir(&self.dir)
            .map_err(io_error("fsync directory", &self.dir))
    }

    /// Finished snapshot files (by name; not validated), newest first.
    ///
    /// # Errors
    /// [`SnapshotError::Io`] if the directory cannot be listed.
    pub fn list(&self) -> Result<Vec<(LogIndex, Term, PathBuf)>, SnapshotError> {
        let mut found: Vec<(LogIndex, Term, PathBuf)> = self
            .names()?
            .into_iter()
            .filter_map(|name| {
                parse_name(&name).map(|(index, term)| (index, term, self.dir.join(name)))
            })
            .collect();
        found.sort_unstable_by_key(|f| std::cmp::Reverse((f.0, f.1)));
        Ok(found)
    }

    /// Starts writing a local snapshot of the state machine as of `meta`.
    ///
    /// # Errors
    /// [`SnapshotError::Io`] if the temp file cannot be created or written;
    /// [`SnapshotError::Encode`] if the meta does not encode.
    pub fn begin(&self, meta: &SnapshotMeta) -> Result<SnapshotWriter, SnapshotError> {
        SnapshotWriter::create(self.fs.clone(), &self.dir, meta, false)
    }

    /// Starts receiving a snapshot streamed by the leader (InstallSnapshot):
    /// feed it with [`SnapshotWriter::write_chunk_at`]. Finished, it is a
    /// received file ([`SnapshotStore::received_path`]) until
    /// [`SnapshotStore::promote_received`] (module doc).
    ///
    /// # Errors
    /// As [`SnapshotStore::begin`].
    pub fn begin_receive(&self, meta: &SnapshotMeta) -> Result<SnapshotWriter, SnapshotError> {
        SnapshotWriter::create(self.fs.clone(), &self.dir, meta, true)
    }

    /// Where a finished, not yet installed received snapshot for `meta` is.
    pub fn received_path(&self, meta: &SnapshotMeta) -> PathBuf {
        self.dir.join(received_file_name(meta))
    }

    /// Installs the received snapshot for `meta`: renames it to its snapshot
    /// name, fsyncs the directory, then applies retention. A no-op returning
    /// the path when it was already promoted. Call it only once its payload
    /// was read back and decoded.
    ///
    /// # Errors
    /// [`SnapshotError::Io`] if the rename, fsync or a deletion fails.
    pub fn promote_received(&self, meta: &SnapshotMeta) -> Result<PathBuf, SnapshotError> {
        let received = received_file_name(meta);
        let path = self.dir.join(snapshot_file_name(meta));
        if !self.names()?.contains(&received) {
            return Ok(path);
        }
        let from = self.dir.join(received);
        self.fs
            .rename(&from, &path)
            .map_err(io_error("rename received snapshot", &from))?;
        self.sync_dir()?;
        self.retain_newest()?;
        Ok(path)
    }

    /// Deletes every received file but `keep` (a newer stream supersedes).
    fn drop_other_received(&self, keep: &Path) -> Result<(), SnapshotError> {
        let mut removed = false;
        for name in self.names()? {
            let path = self.dir.join(&name);
            if name.starts_with(RECEIVED_PREFIX) && !name.ends_with(TMP_SUFFIX) && path != keep {
                self.fs
                    .remove(&path)
                    .map_err(io_error("delete superseded received snapshot", &path))?;
                removed = true;
            }
        }
        if removed {
            self.sync_dir()?;
        }
        Ok(())
    }

    /// The newest snapshot that validates completely, if any. A damaged newer
    /// one is skipped with a `warn!` naming the file and the reason.
    ///
    /// # Errors
    /// [`SnapshotError::Io`] if the directory cannot be listed. Damage is
    /// never an error here: it is logged and skipped.
    pub fn latest(&self) -> Result<Option<(SnapshotMeta, PathBuf)>, SnapshotError> {
        for (_, _, path) in self.list()? {
            match self.verify(&path) {
                Ok(meta) => return Ok(Some((meta, path))),
                Err(error) => {
                    warn!(path = %path.display(), reason = %error, "skipping damaged snapshot");
                }
            }
        }
        Ok(None)
    }

    /// Validates the whole file (header, trailer, payload CRC).
    ///
    /// # Errors
    /// [`SnapshotError::Corrupt`] or [`SnapshotError::Io`].
    pub fn verify(&self, path: &Path) -> Result<SnapshotMeta, SnapshotError> {
        let mut reader = self.open_reader(path)?;
        while reader.read_chunk(VERIFY_CHUNK_BYTES)?.is_some() {}
        Ok(reader.meta)
    }

    /// The index through which the WAL may be compacted while keeping the
    /// fallback to the previous snapshot: the older of the retained snapshots
    /// (the only one if there is one).
    ///
    /// # Errors
    /// [`SnapshotError::Io`] if the directory cannot be listed.
    pub fn compaction_floor(&self) -> Result<Option<LogIndex>, SnapshotError> {
        let list = self.list()?;
        Ok(list
            .get(RETAINED_SNAPSHOTS - 1)
            .or(list.first())
            .map(|(index, _, _)| *index))
    }

    /// Opens a snapshot for streaming its payload; header and trailer are
    /// checked now, the payload CRC at its end.
    ///
    /// # Errors
    /// [`SnapshotError::Corrupt`] if the header or trailer is damaged,
    /// [`SnapshotError::Io`] if the file cannot be read.
    pub fn open_reader(&self, path: &Path) -> Result<SnapshotReader, SnapshotError> {
        SnapshotReader::open(&*self.fs, path)
    }

    fn retain_newest(&self) -> Result<(), SnapshotError> {
        let list = self.list()?;
        if list.len() <= RETAINED_SNAPSHOTS {
            return Ok(());
        }
        for (_, _, path) in &list[RETAINED_SNAPSHOTS..] {
            self.fs
                .remove(path)
                .map_err(io_error("delete old snapshot", path))?;
            info!(path = %path.display(), "deleted old snapshot");
        }
        self.sync_dir()
    }
}

fn encode_header(meta: &SnapshotMeta) -> Result<Vec<u8>, SnapshotError> {
    let meta_bytes =
        postcard::to_stdvec(meta).map_err(|source| SnapshotError::Encode { source })?;
    let mut header = Vec::with_capacity(HEADER_PREFIX_BYTES + meta_bytes.len() + HEADER_CRC_BYTES);
    header.extend_from_slice(HEADER_MAGIC);
    header.extend_from_slice(&(meta_bytes.len() as u32).to_le_bytes());
    header.extend_from_slice(&meta_bytes);
    let crc = crc32c::crc32c(&header);
    header.extend_from_slice(&crc.to_le_bytes());
    Ok(header)
}

fn encode_trailer(payload_len: u64, payload_crc: u32) -> [u8; TRAILER_BYTES] {
    let mut trailer = [0u8; TRAILER_BYTES];
    trailer[..8].copy_from_slice(&payload_len.to_le_bytes());
    trailer[8..12].copy_from_slice(&payload_crc.to_le_bytes());
    trailer[12..16].copy_from_slice(TRAILER_MAGIC);
    let crc = crc32c::crc32c(&trailer[..16]);
    trailer[16..].copy_from_slice(&crc.to_le_bytes());
    trailer
}

/// A snapshot being written to its temp file. Dropped without
/// [`SnapshotWriter::finish`], the temp file is deleted.
#[derive(Debug)]
pub struct SnapshotWriter {
    fs: SharedFs,
    dir: PathBuf,
    tmp_path: PathBuf,
    final_path: PathBuf,
    file: Box<dyn StorageFile>,
    meta: SnapshotMeta,
    header_len: u64,
    /// Payload bytes accepted (written or buffered).
    payload_len: u64,
    /// Payload bytes written to the file.
    written_len: u64,
    buffer: Vec<u8>,
    crc: u32,
    done: bool,
    /// Received from the leader: finished under the received name.
    received: bool,
}

impl SnapshotWriter {
    fn create(
        fs: SharedFs,
        dir: &Path,
        meta: &SnapshotMeta,
        received: bool,
    ) -> Result<SnapshotWriter, SnapshotError> {
        let name = if received {
            received_file_name(meta)
        } else {
            snapshot_file_name(meta)
        };
        let final_path = dir.join(&name);
        let tmp_path = dir.join(format!("{name}{TMP_SUFFIX}"));
        if fs.read(&tmp_path).is_ok() {
            // A receive of the same snapshot that was abandoned: start over.
            fs.remove(&tmp_path)
                .map_err(io_error("delete stale temp snapshot", &tmp_path))?;
        }
        let mut file = fs
            .create_new(&tmp_path)
            .map_err(io_error("create temp snapshot", &tmp_path))?;
        let header = encode_header(meta)?;
        file.write_at(0, &header)
            .map_err(io_error("write snapshot header", &tmp_path))?;
        Ok(SnapshotWriter {
            fs,
            dir: dir.to_path_buf(),
            tmp_path,
            final_path,
            file,
            meta: meta.clone(),
            header_len: header.len() as u64,
            payload_len: 0,
            written_len: 0,
            buffer: Vec::new(),
            crc: 0,
            done: false,
            received,
        })
    }

    /// The snapshot's meta.
    pub fn meta(&self) -> &SnapshotMeta {
        &self.meta
    }

    /// Payload bytes accepted so far (the offset the next chunk must have).
    pub fn payload_len(&self) -> u64 {
        self.payload_len
    }

    /// CRC32C of the payload accepted so far (compared with the sender's
    /// [`SnapshotReader::payload_crc`] when a received stream ends).
    pub fn payload_crc(&self) -> u32 {
        self.crc
    }

    /// Appends `data` to the payload.
    ///
    /// # Errors
    /// [`SnapshotError::Io`] if writing the temp file fails.
    pub fn write_chunk(&mut self, data: &[u8]) -> Result<(), SnapshotError> {
        self.crc = crc32c::crc32c_append(self.crc, data);
        self.payload_len += data.len() as u64;
        if self.buffer.len() + data.len() > WRITE_BUFFER_BYTES {
            self.flush()?;
        }
        if data.len() >= WRITE_BUFFER_BYTES {
            self.write_through(data)
        } else {
            self.buffer.extend_from_slice(data);
            Ok(())
        }
    }

    /// Appends a received InstallSnapshot chunk that starts at payload
    /// `offset`.
    ///
    /// # Errors
    /// [`SnapshotError::ChunkOffset`] if `offset` is not
    /// [`SnapshotWriter::payload_len`] (a duplicate or out-of-order chunk;
    /// nothing is written); [`SnapshotError::Io`] as
    /// [`SnapshotWriter::write_chunk`].
    pub fn write_chunk_at(&mut self, offset: u64, data: &[u8]) -> Result<(), SnapshotError> {
        if offset != self.payload_len {
            return Err(SnapshotError::ChunkOffset {
                path: self.tmp_path.clone(),
                offset,
                expected: self.payload_len,
            });
        }
        self.write_chunk(data)
    }

    fn write_through(&mut self, data: &[u8]) -> Result<(), SnapshotError> {
        self.file
            .write_at(self.header_len + self.written_len, data)
            .map_err(io_error("write snapshot", &self.tmp_path))?;
        self.written_len += data.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SnapshotError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let buffer = std::mem::take(&mut self.buffer);
        let result = self.write_through(&buffer);
        self.buffer = buffer;
        self.buffer.clear();
        result
    }

    /// Seals the snapshot and makes it durable under its final name, then
    /// applies retention (module doc, "Writing"). Returns its meta and path.
    ///
    /// # Errors
    /// [`SnapshotError::Io`] if a write, fsync, rename or delete fails; the
    /// snapshot then does not count (a restart ignores the temp file), except
    /// a failure of the retention step, after which the snapshot is durable.
    pub fn finish(mut self) -> Result<(SnapshotMeta, PathBuf), SnapshotError> {
        self.flush()?;
        let trailer = encode_trailer(self.payload_len, self.crc);
        self.file
            .write_at(self.header_len + self.written_len, &trailer)
            .map_err(io_error("write snapshot trailer", &self.tmp_path))?;
        // Ordering: data durable, then the name, then the name's durability.
        self.file
            .sync_data()
            .map_err(io_error("fdatasync snapshot", &self.tmp_path))?;
        self.fs
            .rename(&self.tmp_path, &self.final_path)
            .map_err(io_error("rename snapshot", &self.tmp_path))?;
        self.done = true;
        self.fs
            .sync_dir(&self.dir)
            .map_err(io_error("fsync directory", &self.dir))?;
        info!(
            path = %self.final_path.display(),
            index = self.meta.last_included_index.0,
            term = self.meta.last_included_term.0,
            payload_bytes = self.payload_len,
            "snapshot written"
        );
        let store = SnapshotStore {
            fs: self.fs.clone(),
            dir: self.dir.clone(),
        };
        if self.received {
            store.drop_other_received(&self.final_path)?;
        } else {
            store.retain_newest()?;
        }
        Ok((self.meta.clone(), self.final_path.clone()))
    }

    /// Abandons the snapshot and deletes the temp file.
    pub fn abort(self) {}
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        if !self.done {
            // Best effort: a leftover temp file is deleted at the next open.
            let _ = self.fs.remove(&self.tmp_path);
        }
    }
}

/// Streams a snapshot's payload, checking its CRC at the end.
#[derive(Debug)]
pub struct SnapshotReader {
    file: Box<dyn StorageFile>,
    path: PathBuf,
    meta: SnapshotMeta,
    payload_start: u64,
    payload_len: u64,
    expected_crc: u32,
    /// Payload bytes returned so far.
    offset: u64,
    crc: u32,
    verified: bool,
}

impl SnapshotReader {
    fn open(fs: &dyn super::fs::StorageFs, path: &Path) -> Result<SnapshotReader, SnapshotError> {
        let corrupt = |offset: u64, reason: String| SnapshotError::Corrupt {
            path: path.to_path_buf(),
            offset,
            reason,
        };
        let mut file = fs.open(path).map_err(io_error("open snapshot", path))?;
        let file_len = file.len().map_err(io_error("stat snapshot", path))?;
        let mut prefix = [0u8; HEADER_PREFIX_BYTES];
        read_exact_at(&mut *file, path, 0, &mut prefix, file_len)?;
        let v1 = &prefix[..8] == HEADER_MAGIC_V1;
        if &prefix[..8] != HEADER_MAGIC && !v1 {
            return Err(corrupt(0, "bad header magic".to_string()));
        }
        let meta_len = u32::from_le_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]) as u64;
        let header_len = (HEADER_PREFIX_BYTES + HEADER_CRC_BYTES) as u64 + meta_len;
        if meta_len > MAX_META_BYTES as u64 || header_len + TRAILER_BYTES as u64 > file_len {
            return Err(corrupt(
                8,
                format!("metadata length {meta_len} does not fit the {file_len}-byte file"),
            ));
        }
        // Bounded by MAX_META_BYTES and by the file's length (checked above).
        let mut rest = vec![0u8; meta_len as usize + HEADER_CRC_BYTES];
        read_exact_at(
            &mut *file,
            path,
            HEADER_PREFIX_BYTES as u64,
            &mut rest,
            file_len,
        )?;
        let (meta_bytes, crc_bytes) = rest.split_at(meta_len as usize);
        let stored = u32::from_le_bytes([crc_bytes[0], crc_bytes[1], crc_bytes[2], crc_bytes[3]]);
        let computed = crc32c::crc32c_append(crc32c::crc32c(&prefix), meta_bytes);
        if stored != computed {
            return Err(corrupt(
                0,
                format!(
                    "header checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
                ),
            ));
        }
        let meta = decode_meta(v1, meta_bytes)
            .map_err(|reason| corrupt(HEADER_PREFIX_BYTES as u64, reason))?;
        if let Some(named) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(parse_name)
        {
            if named != (meta.last_included_index, meta.last_included_term) {
                return Err(corrupt(
                    HEADER_PREFIX_BYTES as u64,
                    format!(
                        "metadata says index {} term {}, the file name another",
                        meta.last_included_index, meta.last_included_term
                    ),
                ));
            }
        }
        let trailer_offset = file_len - TRAILER_BYTES as u64;
        let mut trailer = [0u8; TRAILER_BYTES];
        read_exact_at(&mut *file, path, trailer_offset, &mut trailer, file_len)?;
        let stored = u32::from_le_bytes([trailer[16], trailer[17], trailer[18], trailer[19]]);
        let computed = crc32c::crc32c(&trailer[..16]);
        if stored != computed || &trailer[12..16] != TRAILER_MAGIC {
            return Err(corrupt(
                trailer_offset,
                "damaged or missing trailer (an unfinished write?)".to_string(),
            ));
        }
        let mut len_bytes = [0u8; 8];
        len_bytes.copy_from_slice(&trailer[..8]);
        let payload_len = u64::from_le_bytes(len_bytes);
        if payload_len != trailer_offset - header_len {
            return Err(corrupt(
                trailer_offset,
                format!(
                    "trailer says {payload_len} payload bytes, the file holds {}",
                    trailer_offset - header_len
                ),
            ));
        }
        Ok(SnapshotReader {
            file,
            path: path.to_path_buf(),
            meta,
            payload_start: header_len,
            payload_len,
            expected_crc: u32::from_le_bytes([trailer[8], trailer[9], trailer[10], trailer[11]]),
            offset: 0,
            crc: 0,
            verified: false,
        })
    }

    /// The snapshot's meta.
    pub fn meta(&self) -> &SnapshotMeta {
        &self.meta
    }

    /// The payload's length in bytes.
    pub fn payload_len(&self) -> u64 {
        self.payload_len
    }

    /// The payload's CRC32C as recorded in the trailer.
    pub fn payload_crc(&self) -> u32 {
        self.expected_crc
    }

    /// Payload bytes returned so far (the offset of the next chunk).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next chunk of at most `max_len` bytes (at least 1), or `None` at
    /// the end once the payload CRC has been checked.
    ///
    /// # Errors
    /// [`SnapshotError::Corrupt`] if the payload CRC does not match (at the
    /// end) or the file shrank; [`SnapshotError::Io`] on a read failure.
    pub fn read_chunk(&mut self, max_len: usize) -> Result<Option<Vec<u8>>, SnapshotError> {
        let remaining = self.payload_len - self.offset;
        if remaining == 0 {
            if !self.verified {
                if self.crc != self.expected_crc {
                    return Err(SnapshotError::Corrupt {
                        path: self.path.clone(),
                        offset: self.payload_start,
                        reason: format!(
                            "payload checksum mismatch (stored {:#010x}, computed {:#010x})",
                            self.expected_crc, self.crc
                        ),
                    });
                }
                self.verified = true;
            }
            return Ok(None);
        }
        let n = remaining.min(max_len.max(1) as u64) as usize;
        let mut chunk = vec![0u8; n];
        let file_len = self.payload_start + self.payload_len + TRAILER_BYTES as u64;
        read_exact_at(
            &mut *self.file,
            &self.path,
            self.payload_start + self.offset,
            &mut chunk,
            file_len,
        )?;
        self.crc = crc32c::crc32c_append(self.crc, &chunk);
        self.offset += n as u64;
        Ok(Some(chunk))
    }

    /// The whole payload, checked.
    ///
    /// # Errors
    /// As [`SnapshotReader::read_chunk`].
    pub fn read_to_end(mut self) -> Result<Vec<u8>, SnapshotError> {
        let mut payload = Vec::new();
        while let Some(chunk) = self.read_chunk(VERIFY_CHUNK_BYTES)? {
            payload.extend_from_slice(&chunk);
        }
        Ok(payload)
    }
}

impl std::io::Read for SnapshotReader {
    /// Reads payload bytes; at the end, a CRC mismatch is an `InvalidData`
    /// error instead of `Ok(0)`.
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.read_chunk(buf.len()) {
            Ok(Some(chunk)) => {
                buf[..chunk.len()].copy_from_slice(&chunk);
                Ok(chunk.len())
            }
            Ok(None) => Ok(0),
            Err(e) => Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        }
    }
}

/// Fills `buf` from `offset`; a short file is corruption, not a panic.
fn read_exact_at(
    file: &mut dyn StorageFile,
    path: &Path,
    offset: u64,
    buf: &mut [u8],
    file_len: u64,
) -> Result<(), SnapshotError> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = file
            .read_at(offset + filled as u64, &mut buf[filled..])
            .map_err(io_error("read snapshot", path))?;
        if n == 0 {
            return Err(SnapshotError::Corrupt {
                path: path.to_path_buf(),
                offset: offset + filled as u64,
                reason: format!("file ends early ({file_len} bytes expected)"),
            });
        }
        filled += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
