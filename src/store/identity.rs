//! The data directory's identity record: which cluster and which node its
//! WAL and snapshots belong to.
//!
//! `<data_dir>/IDENTITY` is written once, at the first start on the
//! directory (or the first start of this version on a directory that has a
//! WAL but no record yet), and checked at every start after: a directory
//! copied from another node, or from another cluster, holds a log that is not
//! this node's, and starting on it would let the node vote and acknowledge on
//! the strength of someone else's log (a safety violation, not just a
//! misconfiguration). The node then refuses to start, naming the directory,
//! the ids found and the ids configured.
//!
//! Format: the magic `DKVID\x01`, a little-endian `u32` CRC32C of the rest,
//! then postcard `(cluster_id: String, node_id: u64)`. Written to a temp file,
//! fsynced, renamed, the directory fsynced — the record exists completely or
//! not at all. Blocking I/O: call it from a blocking thread.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The record's file name inside the data directory.
pub const IDENTITY_FILE_NAME: &str = "IDENTITY";
const MAGIC: &[u8; 6] = b"DKVID\x01";
const CRC_BYTES: usize = 4;
/// The record is tiny; a bigger file is not one.
const MAX_RECORD_BYTES: u64 = 64 * 1024;

/// Why the identity check failed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The directory belongs to another node or cluster.
    #[error(
        "data directory {} belongs to cluster '{found_cluster}' node {found_node}, but this node \
         is configured as cluster '{cluster}' node {node}: refusing to start on another node's \
         data (point data_dir at this node's directory, or at an empty one to join afresh)",
        .dir.display()
    )]
    Mismatch {
        /// The data directory.
        dir: PathBuf,
        /// Cluster id recorded there.
        found_cluster: String,
        /// Node id recorded there.
        found_node: u64,
        /// Cluster id configured.
        cluster: String,
        /// Node id configured.
        node: u64,
    },
    /// The record exists but is damaged.
    #[error("identity record {} is damaged: {reason}", .path.display())]
    Corrupt {
        /// The record file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Reading or writing the record failed.
    #[error("{op} {}: {source}", .path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// What [`check_or_record`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityOutcome {
    /// The record was there and matches.
    Matched,
    /// There was no record; it was written now.
    Recorded,
}

fn io_error<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> IdentityError + 'a {
    move |source| IdentityError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Checks `data_dir`'s record against `cluster_id`/`node_id`, writing it if
/// there is none (module docs). Call with the directory's lock held.
///
/// # Errors
/// [`IdentityError::Mismatch`] for another node's or cluster's directory,
/// [`IdentityError::Corrupt`] for a damaged record, [`IdentityError::Io`].
pub fn check_or_record(
    data_dir: &Path,
    cluster_id: &str,
    node_id: u64,
) -> Result<IdentityOutcome, IdentityError> {
    let path = data_dir.join(IDENTITY_FILE_NAME);
    match std::fs::metadata(&path) {
        Ok(meta) => {
            if meta.len() > MAX_RECORD_BYTES {
                return Err(IdentityError::Corrupt {
                    path,
                    reason: format!("{} bytes, more than a record can be", meta.len()),
                });
            }
            let bytes = std::fs::read(&path).map_err(io_error("read", &path))?;
            let (found_cluster, found_node) =
                decode(&bytes).map_err(|reason| IdentityError::Corrupt {
                    path: path.clone(),
                    reason,
                })?;
            if found_cluster != cluster_id || found_node != node_id {
                return Err(IdentityError::Mismatch {
                    dir: data_dir.to_path_buf(),
                    found_cluster,
                    found_node,
                    cluster: cluster_id.to_string(),
                    node: node_id,
                });
            }
            Ok(IdentityOutcome::Matched)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            write(data_dir, &path, cluster_id, node_id)?;
            Ok(IdentityOutcome::Recorded)
        }
        Err(e) => Err(io_error("stat", &path)(e)),
    }
}

fn encode(cluster_id: &str, node_id: u64) -> Vec<u8> {
    // Serialising an in-memory pair to a Vec cannot fail with postcard.
    let body = postcard::to_allocvec(&(cluster_id, node_id))
        .expect("postcard serialises in-memory values");
    let mut out = Vec::with_capacity(MAGIC.len() + CRC_BYTES + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

fn decode(bytes: &[u8]) -> Result<(String, u64), String> {
    let rest = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| "it does not start with the identity magic".to_string())?;
    if rest.len() < CRC_BYTES {
        return Err("too short for its checksum".to_string());
    }
    let (crc, body) = rest.split_at(CRC_BYTES);
    let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32c::crc32c(body) != crc {
        return Err("checksum mismatch".to_string());
    }
    postcard::from_bytes::<(String, u64)>(body).map_err(|e| format!("does not decode: {e}"))
}

fn write(
    data_dir: &Path,
    path: &Path,
    cluster_id: &str,
    node_id: u64,
) -> Result<(), IdentityError> {
    let tmp = data_dir.join(format!("{IDENTITY_FILE_NAME}.tmp"));
    let mut file = std::fs::File::create(&tmp).map_err(io_error("create", &tmp))?;
    file.write_all(&encode(cluster_id, node_id))
        .map_err(io_error("write", &tmp))?;
    file.sync_all().map_err(io_error("fsync", &tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io_error("rename", &tmp))?;
    std::fs::File::open(data_dir)
        .and_then(|dir| dir.sync_all())
        .map_err(io_error("fsync directory", data_dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_dir_records_its_identity_once_and_refuses_another_node_or_cluster() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            check_or_record(dir.path(), "c1", 2).expect("fresh"),
            IdentityOutcome::Recorded
        );
        assert_eq!(
            check_or_record(dir.path(), "c1", 2).expect("same"),
            IdentityOutcome::Matched
        );
        let other_node = check_or_record(dir.path(), "c1", 3).expect_err("other node");
        let text = other_node.to_string();
        assert!(
            text.contains(&dir.path().display().to_string())
                && text.contains("cluster 'c1' node 2")
                && text.contains("configured as cluster 'c1' node 3"),
            "{text}"
        );
        let other_cluster = check_or_record(dir.path(), "c9", 2).expect_err("other cluster");
        assert!(matches!(
            other_cluster,
            IdentityError::Mismatch { ref found_cluster, .. } if found_cluster == "c1"
        ));
    }

    #[test]
    fn a_damaged_record_is_an_error_not_a_rewrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        check_or_record(dir.path(), "c1", 1).expect("fresh");
        let path = dir.path().join(IDENTITY_FILE_NAME);
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        std::fs::write(&path, &bytes).expect("write");
        assert!(matches!(
            check_or_record(dir.path(), "c1", 1),
            Err(IdentityError::Corrupt { .. })
        ));
    }
}
