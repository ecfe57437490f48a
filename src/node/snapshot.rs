//! Snapshots in the node: taking one, streaming one to a follower, receiving
//! one, loading one. The driver decides when (`driver.rs`); the file format is
//! `store::snapshot`; the payload is `kv::Db::snapshot_chunks`.
//!
//! # The InstallSnapshot path (raft/mod.rs, "Snapshots and compaction")
//!
//! ```text
//! leader driver   sees InstallSnapshot{meta} for peer P in a Ready
//!                 └─ stream task: chunks of snap-<meta>.snap ─► POST /raft/snapshot on P
//!                    (in order, one at a time; the last one carries the payload CRC)
//!                 └─ all written on P ─► the InstallSnapshot message itself to P
//! follower        chunks ─► SnapshotReceiver ─► temp file ─► finish (fsync, rename)
//!                 InstallSnapshot{meta} is stepped into the core only once a
//!                 complete file for that meta was received; otherwise dropped
//!                 (the leader sends it again after an election timeout)
//! follower driver Ready.snapshot = meta: load the file (CRC checked), replace the
//!                 map, reset the WAL to meta and write back the log suffix the
//!                 core kept, fsync — all before this Ready's entries, messages
//!                 (the InstallSnapshot reply) and applies.
//! ```
//!
//! The receiver trusts no chunk: it takes one only from the leader of the
//! current term, for a snapshot beyond the commit index, of a term not above
//! the current one (whatever membership it names: it may have changed since
//! this node last heard, and the Raft core checks it); a stream is tied to the
//! leader and term it started in, continues at exactly the offset received so
//! far, stays within `raft.max_snapshot_receive_bytes`, and its payload CRC
//! must match the leader's. A finished stream is a *received* file, which
//! neither a restart nor retention treats as a snapshot until it is
//! installed (`store::snapshot` module docs): the payload is decoded first,
//! then the file promoted, then the WAL reset.
//!
//! Invariants: a snapshot file is complete and durable before anything refers
//! to it (the WAL's reset record, the core's compaction, a reply to the
//! leader); the WAL never holds less than the core counts as persisted.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::{debug, info, warn};

use super::NodeError;
use crate::kv;
use crate::raft::{Entry, Envelope, LogIndex, Membership, NodeId, SnapshotMeta, Term};
use crate::store::snapshot::snapshot_file_name;
use crate::store::{LogStore, SnapshotError, SnapshotStore, SnapshotWriter, Wal};
use crate::transport::{SnapshotChunk, Transport};

/// How long one chunk may take to reach a follower and be written there.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(10);

/// The path of the finished snapshot file for `meta`.
pub(crate) fn snapshot_path(store: &SnapshotStore, meta: &SnapshotMeta) -> PathBuf {
    store.dir().join(snapshot_file_name(meta))
}

/// Whether two metas name the same snapshot (index and term).
pub(crate) fn same_snapshot(a: &SnapshotMeta, b: &SnapshotMeta) -> bool {
    a.last_included_index == b.last_included_index && a.last_included_term == b.last_included_term
}

/// A snapshot just written by this node, and how far the logs may now be
/// compacted.
#[derive(Debug)]
pub(crate) struct Taken {
    pub meta: SnapshotMeta,
    /// The WAL's floor: the older retained snapshot, so a damaged newest
    /// one still has a fallback that the WAL continues.
    pub floor: SnapshotMeta,
    /// The in-memory log's floor: the newest retained snapshot at or below
    /// this one (this one, unless newer files received from a leader pushed
    /// it out). The Raft core keeps entries only from there: a follower
    /// further behind gets that snapshot, and a restart reads the WAL, not
    /// the core's log. Compacting it to the WAL's floor instead kept two
    /// snapshot intervals of payloads in memory: after 1M SETs, 580,000
    /// entries, 114 MiB beside a 194 MiB keyspace.
    pub log_floor: SnapshotMeta,
    pub payload_bytes: u64,
    pub elapsed: Duration,
}

/// Writes `chunks` (a point-in-time copy of the map as of `meta`) as a
/// snapshot file. Blocking: run it on a blocking thread.
pub(crate) fn write_snapshot(
    store: &SnapshotStore,
    meta: SnapshotMeta,
    chunks: kv::SnapshotChunks,
) -> Result<Taken, SnapshotError> {
    let started = std::time::Instant::now();
    let mut writer = store.begin(&meta)?;
    for chunk in chunks {
        writer.write_chunk(&chunk)?;
    }
    let payload_bytes = writer.payload_len();
    writer.finish()?;
    // The older of the retained snapshots for the WAL, the newest for the
    // in-memory log, unless a newer file (received from a leader, not yet
    // installed) pushed ours down the list: never compact beyond what this
    // node has applied.
    let retained: Vec<_> = store
        .list()?
        .into_iter()
        .take(crate::store::snapshot::RETAINED_SNAPSHOTS)
        .filter(|(index, _, _)| *index <= meta.last_included_index)
        .map(|(index, term, _)| SnapshotMeta {
            last_included_index: index,
            last_included_term: term,
            membership: meta.membership.clone(),
        })
        .collect();
    let floor = retained.last().cloned().unwrap_or_else(|| meta.clone());
    let log_floor = retained.first().cloned().unwrap_or_else(|| meta.clone());
    Ok(Taken {
        meta,
        floor,
        log_floor,
        payload_bytes,
        elapsed: started.elapsed(),
    })
}

/// Reads and decodes the snapshot file for `meta` (its CRCs are checked as
/// it is read). Blocking.
pub(crate) fn load_snapshot(
    store: &SnapshotStore,
    meta: &SnapshotMeta,
) -> Result<kv::Db, NodeError> {
    let path = snapshot_path(store, meta);
    let bytes = store.open_reader(&path)?.read_to_end()?;
    kv::Db::restore(&bytes).map_err(|source| NodeError::SnapshotDecode { path, source })
}

/// The follower's install step for `Ready.snapshot` (module docs): load the
/// file, reset the WAL to it and store the kept suffix again, fsync.
/// Blocking; returns the rebuilt map.
pub(crate) fn install_snapshot(
    store: &SnapshotStore,
    wal: &mut Wal,
    meta: &SnapshotMeta,
    kept_suffix: &[Entry],
) -> Result<kv::Db, NodeError> {
    // The received file is decoded before it becomes a snapshot of ours, so
    // a payload that does not decode never replaces a good one.
    let received = store.received_path(meta);
    let path = if store.open_reader(&received).is_ok() {
        received
    } else {
        snapshot_path(store, meta)
    };
    let bytes = store.open_reader(&path)?.read_to_end()?;
    let db =
        kv::Db::restore(&bytes).map_err(|source| NodeError::SnapshotDecode { path, source })?;
    store.promote_received(meta)?;
    wal.reset_to_snapshot(meta)?;
    if !kept_suffix.is_empty() {
        wal.append(kept_suffix)?;
    }
    wal.sync()?;
    Ok(db)
}

/// The leader's side of InstallSnapshot for one follower: streams the
/// snapshot file named by the message's meta, then hands the message to the
/// transport. Returns whether the whole stream went through.
pub(crate) async fn stream_snapshot(
    store: Arc<SnapshotStore>,
    transport: Transport,
    envelope: Envelope,
    meta: SnapshotMeta,
    chunk_bytes: usize,
) -> bool {
    let peer = envelope.to;
    let started = std::time::Instant::now();
    match send_chunks(&store, &transport, peer, &meta, chunk_bytes).await {
        Ok(bytes) => {
            info!(
                peer = peer.0,
                index = meta.last_included_index.0,
                bytes,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "snapshot streamed"
            );
            transport.send(envelope);
            true
        }
        Err(reason) => {
            warn!(peer = peer.0, index = meta.last_included_index.0, %reason,
                "snapshot stream abandoned; it is sent again after an election timeout");
            false
        }
    }
}

async fn send_chunks(
    store: &Arc<SnapshotStore>,
    transport: &Transport,
    peer: NodeId,
    meta: &SnapshotMeta,
    chunk_bytes: usize,
) -> Result<u64, String> {
    let path = snapshot_path(store, meta);
    let opener = store.clone();
    let mut reader = tokio::task::spawn_blocking(move || opener.open_reader(&path))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let payload_crc = reader.payload_crc();
    loop {
        let offset = reader.offset();
        let (back, read) = tokio::task::spawn_blocking(move || {
            let read = reader.read_chunk(chunk_bytes);
            (reader, read)
        })
        .await
        .map_err(|e| e.to_string())?;
        reader = back;
        let data = read.map_err(|e| e.to_string())?;
        let done = data.is_none();
        let chunk = SnapshotChunk {
            meta: meta.clone(),
            offset,
            data: data.map(bytes::Bytes::from).unwrap_or_default(),
            done,
            payload_crc: if done { payload_crc } else { 0 },
        };
        transport
            .send_snapshot_chunk(peer, &chunk, CHUNK_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        if done {
            return Ok(offset);
        }
    }
}

/// What the receiver checks a chunk against: the node's state now.
#[derive(Clone, Debug)]
pub(crate) struct ReceiveContext {
    /// The current term.
    pub term: Term,
    /// The leader of the current term, if known (never this node).
    pub leader: Option<NodeId>,
    /// The commit index: a snapshot at or below it would not be installed.
    pub commit_index: LogIndex,
    /// `raft.max_snapshot_receive_bytes`.
    pub max_bytes: u64,
}

/// Why a snapshot chunk was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ChunkRefused {
    /// A short stable name, for the refusal metric.
    pub kind: &'static str,
    /// What is wrong.
    pub reason: String,
}

fn refused(kind: &'static str, reason: String) -> ChunkRefused {
    ChunkRefused { kind, reason }
}

/// The stream being received.
struct Stream {
    from: NodeId,
    term: Term,
    writer: SnapshotWriter,
}

/// The follower's side of the stream: one snapshot received at a time into a
/// temp file; a finished one is remembered so the driver can tell whether an
/// InstallSnapshot message has its data here.
pub(crate) struct SnapshotReceiver {
    store: Arc<SnapshotStore>,
    /// The stream being received.
    current: Mutex<Option<Stream>>,
    /// The last snapshot received completely.
    received: Mutex<Option<SnapshotMeta>>,
}

impl SnapshotReceiver {
    pub(crate) fn new(store: Arc<SnapshotStore>) -> SnapshotReceiver {
        SnapshotReceiver {
            store,
            current: Mutex::new(None),
            received: Mutex::new(None),
        }
    }

    /// Whether a complete, durable file for `meta` was received.
    pub(crate) fn has_received(&self, meta: &SnapshotMeta) -> bool {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|r| same_snapshot(r, meta))
    }

    /// Writes one chunk from `from`, checked against `ctx` (module docs). A
    /// chunk at offset 0 starts a new stream (abandoning any other); any
    /// other chunk must continue the current stream exactly. Blocking.
    pub(crate) fn receive(
        &self,
        from: NodeId,
        chunk: SnapshotChunk,
        ctx: &ReceiveContext,
    ) -> Result<(), ChunkRefused> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = check_chunk(from, &chunk, ctx) {
            // Whatever stream was running is not from the current leader
            // and term any more (or this one is bad): drop it.
            *current = None;
            return Err(e);
        }
        if chunk.offset == 0 && !chunk.done {
            // Drop the old writer first: it deletes its temp file, which may
            // have the same name as the new one.
            *current = None;
            let writer = self
                .store
                .begin_receive(&chunk.meta)
                .map_err(|e| refused("snapshot_io", e.to_string()))?;
            debug!(
                from = from.0,
                index = chunk.meta.last_included_index.0,
                "receiving snapshot"
            );
            *current = Some(Stream {
                from,
                term: ctx.term,
                writer,
            });
        }
        let Some(stream) = current.as_mut() else {
            return Err(refused(
                "snapshot_stream",
                format!(
                    "snapshot chunk at offset {} but no snapshot is being received",
                    chunk.offset
                ),
            ));
        };
        if stream.from != from
            || stream.term != ctx.term
            || !same_snapshot(stream.writer.meta(), &chunk.meta)
        {
            let reason = format!(
                "snapshot chunk from node {from} (term {}) for index {} does not belong to the \
                 stream being received (node {}, term {}, index {})",
                ctx.term,
                chunk.meta.last_included_index,
                stream.from,
                stream.term,
                stream.writer.meta().last_included_index
            );
            *current = None;
            return Err(refused("snapshot_stream", reason));
        }
        if let Err(e) = stream.writer.write_chunk_at(chunk.offset, &chunk.data) {
            *current = None;
            return Err(refused("snapshot_stream", e.to_string()));
        }
        if !chunk.done {
            return Ok(());
        }
        let Some(stream) = current.take() else {
            return Err(refused(
                "snapshot_stream",
                "snapshot stream vanished".to_string(),
            ));
        };
        let writer = stream.writer;
        if writer.payload_crc() != chunk.payload_crc {
            return Err(refused(
                "snapshot_crc",
                format!(
                    "snapshot for index {} arrived damaged: payload CRC {:08x}, the leader's is \
                     {:08x}",
                    chunk.meta.last_included_index,
                    writer.payload_crc(),
                    chunk.payload_crc
                ),
            ));
        }
        let (meta, path) = writer
            .finish()
            .map_err(|e| refused("snapshot_io", e.to_string()))?;
        info!(from = from.0, index = meta.last_included_index.0, path = %path.display(),
            "snapshot received");
        *self.received.lock().unwrap_or_else(|e| e.into_inner()) = Some(meta);
        Ok(())
    }
}

/// The checks a chunk must pass whatever the stream (module docs).
fn check_chunk(
    from: NodeId,
    chunk: &SnapshotChunk,
    ctx: &ReceiveContext,
) -> Result<(), ChunkRefused> {
    let meta = &chunk.meta;
    if ctx.leader != Some(from) {
        return Err(refused(
            "snapshot_not_from_leader",
            format!(
                "snapshot chunk from node {from}, which is not the leader of term {} (leader: {:?})",
                ctx.term, ctx.leader
            ),
        ));
    }
    if meta.last_included_term > ctx.term || meta.last_included_term == Term(0) {
        return Err(refused(
            "snapshot_malformed",
            format!(
                "snapshot of term {} in term {}",
                meta.last_included_term, ctx.term
            ),
        ));
    }
    if meta.last_included_index <= ctx.commit_index {
        return Err(refused(
            "snapshot_stale",
            format!(
                "snapshot through index {} is not beyond the commit index {}",
                meta.last_included_index, ctx.commit_index
            ),
        ));
    }
    // Any membership is fine: the sender is a member of this cluster (the
    // transport checked the cluster id), and the membership may have changed
    // since this node last heard. The Raft core refuses one with no voter.
    let end = chunk.offset.checked_add(chunk.data.len() as u64);
    if end.is_none_or(|end| end > ctx.max_bytes) {
        return Err(refused(
            "snapshot_too_large",
            format!(
                "snapshot stream past raft.max_snapshot_receive_bytes ({} bytes)",
                ctx.max_bytes
            ),
        ));
    }
    Ok(())
}

/// The meta of a snapshot this node takes at `index` (term `term`),
/// with `membership`, the one in effect there
/// ([`crate::raft::Raft::membership_at`]).
pub(crate) fn local_meta(index: LogIndex, term: Term, membership: Membership) -> SnapshotMeta {
    SnapshotMeta {
        last_included_index: index,
        last_included_term: term,
        membership,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::FaultyFs;

    fn voters() -> Vec<NodeId> {
        vec![NodeId(1), NodeId(2), NodeId(3)]
    }

    fn ctx() -> ReceiveContext {
        ReceiveContext {
            term: Term(5),
            leader: Some(NodeId(1)),
            commit_index: LogIndex(10),
            max_bytes: 100,
        }
    }

    fn chunk(index: u64, term: u64, offset: u64, data: &[u8], done: bool) -> SnapshotChunk {
        SnapshotChunk {
            meta: SnapshotMeta {
                last_included_index: LogIndex(index),
                last_included_term: Term(term),
                membership: Membership::voters_only(voters()),
            },
            offset,
            data: bytes::Bytes::copy_from_slice(data),
            done,
            payload_crc: if done { crc32c::crc32c(b"abc") } else { 0 },
        }
    }

    fn receiver() -> SnapshotReceiver {
        let fs = FaultyFs::new();
        let store =
            SnapshotStore::open_with(fs.shared(), std::path::Path::new("/data")).expect("store");
        SnapshotReceiver::new(Arc::new(store))
    }

    #[test]
    fn a_snapshot_stream_is_taken_only_from_the_current_leader_within_bounds() {
        let r = receiver();
        let kind = |result: Result<(), ChunkRefused>| result.expect_err("refused").kind;
        // Not the leader, a stale snapshot, a term from the future, too big.
        assert_eq!(
            kind(r.receive(NodeId(2), chunk(20, 5, 0, b"abc", false), &ctx())),
            "snapshot_not_from_leader"
        );
        assert_eq!(
            kind(r.receive(NodeId(1), chunk(10, 5, 0, b"abc", false), &ctx())),
            "snapshot_stale"
        );
        assert_eq!(
            kind(r.receive(NodeId(1), chunk(20, 6, 0, b"abc", false), &ctx())),
            "snapshot_malformed"
        );
        assert_eq!(
            kind(r.receive(NodeId(1), chunk(20, 5, 0, &[0; 101], false), &ctx())),
            "snapshot_too_large"
        );
        // A stream that started under one term does not continue in the next.
        r.receive(NodeId(1), chunk(20, 5, 0, b"ab", false), &ctx())
            .expect("first chunk");
        let next_term = ReceiveContext {
            term: Term(6),
            ..ctx()
        };
        assert_eq!(
            kind(r.receive(NodeId(1), chunk(20, 5, 2, b"c", false), &next_term)),
            "snapshot_stream"
        );
        // A gap in the offsets is refused; an exact stream is received.
        r.receive(NodeId(1), chunk(20, 5, 0, b"ab", false), &ctx())
            .expect("restart");
        assert_eq!(
            kind(r.receive(NodeId(1), chunk(20, 5, 3, b"c", false), &ctx())),
            "snapshot_stream"
        );
        r.receive(NodeId(1), chunk(20, 5, 0, b"ab", false), &ctx())
            .expect("restart");
        r.receive(NodeId(1), chunk(20, 5, 2, b"c", false), &ctx())
            .expect("continues");
        r.receive(NodeId(1), chunk(20, 5, 3, b"", true), &ctx())
            .expect("sealed");
        assert!(r.has_received(&chunk(20, 5, 0, b"", false).meta));
    }

    /// Each snapshot written sets two floors: the WAL keeps the entries
    /// after the older retained snapshot, the in-memory log only those after
    /// the newest, which is the one just written.
    #[test]
    fn the_wal_keeps_the_older_snapshot_and_the_log_only_the_newest() {
        let fs = FaultyFs::new();
        let store =
            SnapshotStore::open_with(fs.shared(), std::path::Path::new("/data")).expect("store");
        let db = kv::Db::new();
        let meta =
            |index: u64| local_meta(LogIndex(index), Term(2), Membership::voters_only(voters()));
        let mut floors = Vec::new();
        for index in [10, 20, 30] {
            let taken =
                write_snapshot(&store, meta(index), db.snapshot_chunks(1 << 16)).expect("written");
            floors.push((
                taken.floor.last_included_index.0,
                taken.log_floor.last_included_index.0,
            ));
        }
        assert_eq!(floors, [(10, 10), (10, 20), (20, 30)]);
    }
}
