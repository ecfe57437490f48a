//! Backups of a running cluster and restores that seed a new one (the file
//! format is `store/backup.rs`).
//!
//! **Taking one** ([`NodeHandle::backup`]): the copy is taken like a
//! linearizable read — after the read barrier (or under the leader lease),
//! once this node has applied through the read index — so it holds every
//! write acknowledged before the backup began, on any node it is asked of.
//! The map is copied at that moment (its structure cloned, values shared, as
//! for a local snapshot) and encoded while the node goes on serving. The
//! header's index is the applied index the node had published when the copy
//! was taken: the copy holds at least every entry through it.
//!
//! **Restoring** ([`restore`], `dkv-server --restore FILE`): only into an
//! empty data directory. The whole file is checked (every CRC, the trailer)
//! and its payload decoded before anything is written; then it becomes the
//! node's snapshot at the backup's (index, term), naming no membership (the
//! config's bootstrap voters apply until the first leader writes them into
//! the log), and the WAL starts after it with the hard state at that term. A
//! new cluster is seeded by restoring the same file on every voter: their
//! logs are then identical, and the first election proceeds from there. A
//! node that starts empty beside restored ones could, with another empty
//! node, form a majority that does not know the backup; restore every voter.

use std::path::Path;

use super::{NodeError, NodeHandle, RequestError};
use crate::kv;
use crate::raft::{HardState, LogIndex, Membership, NodeId, SnapshotMeta, Term};
use crate::store::backup::{BackupHeader, BackupReader};
use crate::store::{LogStore, SnapshotStore, Wal};

/// Bytes of snapshot payload written per call while restoring.
const RESTORE_CHUNK_BYTES: usize = 1 << 20;

impl NodeHandle {
    /// A consistent copy of the map for a backup (see the module docs), and
    /// its header.
    ///
    /// # Errors
    /// As a linearizable read: no leader within the request timeout, the
    /// node still loading, or shutting down.
    pub async fn backup(
        &self,
        chunk_bytes: usize,
    ) -> Result<(BackupHeader, kv::SnapshotChunks), RequestError> {
        let (chunks, status) = self
            .read(|db, _| (db.snapshot_chunks(chunk_bytes), self.status()))
            .await?;
        let header = BackupHeader {
            cluster_id: self.cluster_id().to_string(),
            taken_by: status.id.0,
            index: status.last_applied.0,
            term: status.term.0,
            unix_ms: super::driver::wall_clock_ms(),
        };
        Ok((header, chunks))
    }
}

/// Seeds the empty `data_dir` from the backup `file` (module docs).
/// Blocking.
///
/// # Errors
/// The data directory is not empty, the file is not a valid backup or its
/// payload does not decode, or writing fails.
pub fn restore(data_dir: &Path, file: &Path, voters: &[NodeId]) -> Result<BackupHeader, NodeError> {
    let refuse = |why: String| Err(NodeError::Restore(why));
    match std::fs::read_dir(data_dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return refuse(format!(
                    "data directory {} is not empty: --restore only seeds a new node",
                    data_dir.display()
                ));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return refuse(format!("data directory {}: {e}", data_dir.display())),
    }
    let input = std::fs::File::open(file)
        .map_err(|e| NodeError::Restore(format!("{}: {e}", file.display())))?;
    let bad = |e: crate::store::backup::BackupError| {
        NodeError::Restore(format!("{}: {e}", file.display()))
    };
    let (mut reader, header) = BackupReader::open(std::io::BufReader::new(input)).map_err(bad)?;
    let mut payload = Vec::new();
    while let Some(chunk) = reader.next_chunk().map_err(bad)? {
        payload.extend_from_slice(&chunk);
    }
    // Decoded before anything is written: a backup that does not decode
    // leaves the directory as it was.
    kv::Db::restore(&payload).map_err(|source| NodeError::SnapshotDecode {
        path: file.to_path_buf(),
        source,
    })?;
    if voters.is_empty() {
        return refuse("a restore seeds a cluster: the config must name its voters".into());
    }
    // No membership recorded: the bootstrap one (the config's voters and
    // their addresses) is in effect until the first leader writes it into
    // the log, and the core fills it in when it sends this snapshot on.
    let meta = SnapshotMeta {
        last_included_index: LogIndex(header.index.max(1)),
        last_included_term: Term(header.term.max(1)),
        membership: Membership::default(),
    };
    let lock = Wal::lock(data_dir)?;
    let snapshots = SnapshotStore::open(data_dir)?;
    let mut writer = snapshots.begin(&meta)?;
    for part in payload.chunks(RESTORE_CHUNK_BYTES) {
        writer.write_chunk(part)?;
    }
    writer.finish()?;
    let (mut wal, _) = Wal::open_locked(lock, Some(&meta))?;
    wal.set_hard_state(HardState {
        term: meta.last_included_term,
        voted_for: None,
        commit_index: meta.last_included_index,
    })?;
    wal.sync()?;
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::backup::{encode_header, BackupWriter};

    fn backup_of(db: &kv::Db, index: u64, term: u64) -> Vec<u8> {
        let header = BackupHeader {
            cluster_id: "old".into(),
            taken_by: 1,
            index,
            term,
            unix_ms: 0,
        };
        let mut out = encode_header(&header).to_vec();
        let mut writer = BackupWriter::default();
        for chunk in db.snapshot_chunks(64) {
            if let Some(framed) = writer.push(&chunk) {
                out.extend_from_slice(&framed);
            }
        }
        out.extend_from_slice(&writer.finish());
        out
    }

    fn some_db() -> kv::Db {
        let mut db = kv::Db::new();
        for i in 0..50 {
            db.apply(&kv::Command {
                ts_ms: 1_700_000_000_000,
                op: kv::Op::Set {
                    key: bytes::Bytes::from(format!("k{i}")),
                    value: bytes::Bytes::from(format!("v{i}")),
                },
            });
        }
        db
    }

    #[test]
    fn a_restored_data_dir_opens_at_the_backup_with_its_map() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("b.dkvbackup");
        let db = some_db();
        std::fs::write(&file, backup_of(&db, 120, 4)).expect("write");
        let data = dir.path().join("data");
        let voters = [NodeId(3), NodeId(1), NodeId(2)];
        let header = restore(&data, &file, &voters).expect("restore");
        assert_eq!((header.index, header.term), (120, 4));

        let (wal, initial, snapshots, restored) =
            super::super::open_storage(&data, "new", 1).expect("opens");
        drop(wal);
        assert_eq!(restored.snapshot_bytes(), db.snapshot_bytes());
        let meta = initial.snapshot.expect("a snapshot");
        assert_eq!(meta.last_included_index, LogIndex(120));
        assert_eq!(meta.last_included_term, Term(4));
        assert!(
            meta.membership.members.is_empty(),
            "the bootstrap one applies"
        );
        assert_eq!(initial.hard_state.term, Term(4));
        assert!(snapshots.latest().expect("list").is_some());
    }

    #[test]
    fn restore_refuses_a_used_dir_and_a_bad_file_without_writing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("good");
        std::fs::write(&good, backup_of(&some_db(), 9, 2)).expect("write");
        let used = dir.path().join("used");
        std::fs::create_dir(&used).expect("mkdir");
        std::fs::write(used.join("wal-0001"), b"x").expect("write");
        let err = restore(&used, &good, &[NodeId(1)]).expect_err("used dir");
        assert!(err.to_string().contains("not empty"), "{err}");

        let mut corrupt = backup_of(&some_db(), 9, 2);
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        let bad = dir.path().join("bad");
        std::fs::write(&bad, corrupt).expect("write");
        let fresh = dir.path().join("fresh");
        let err = restore(&fresh, &bad, &[NodeId(1)]).expect_err("corrupt file");
        assert!(err.to_string().contains("checksum"), "{err}");
        assert!(!fresh.exists(), "a refused restore created the data dir");
    }
}
