//! The backup file: a point-in-time copy of the keyspace taken from a running
//! cluster (`dkv-cli backup`), and what seeds a new cluster
//! (`dkv-server --restore`).
//!
//! # Format (all integers little-endian)
//!
//! ```text
//! "DKVBACKUP1"                      magic and version
//! u32 len, len bytes, u32 crc       the header: JSON of [`BackupHeader`]
//! repeated:
//!   u32 len (> 0), len bytes, u32 crc   one chunk of the snapshot payload
//! u32 0                             end of chunks
//! u64 total, u32 crc                payload length and CRC over all of it
//! ```
//!
//! Every CRC is CRC-32C. The payload is the snapshot encoding of the map
//! (`kv/snapshot.rs`), the same bytes a snapshot file holds, so a restore
//! writes it into the snapshot store unchanged. A file is valid only when it
//! reads to its trailer with every CRC and the total matching: a download
//! cut short, a flipped bit or trailing garbage is refused, never restored
//! in part. Chunks are bounded ([`MAX_CHUNK_BYTES`]) so a hostile file
//! cannot make the reader allocate without limit.

use std::io::Read;

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

/// The file's first bytes.
pub const MAGIC: &[u8; 10] = b"DKVBACKUP1";
/// Largest header accepted.
pub const MAX_HEADER_BYTES: u32 = 64 * 1024;
/// Largest chunk accepted.
pub const MAX_CHUNK_BYTES: u32 = 64 * 1024 * 1024;

/// What a backup says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupHeader {
    /// The cluster it was taken from.
    pub cluster_id: String,
    /// The node that took it.
    pub taken_by: u64,
    /// The copy holds every entry applied through this index.
    pub index: u64,
    /// The term the cluster was in when it was taken.
    pub term: u64,
    /// When it was taken (milliseconds since the Unix epoch).
    pub unix_ms: u64,
}

/// Why a backup file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Reading failed (or the file ended early).
    #[error("reading the backup: {0}")]
    Io(#[from] std::io::Error),
    /// Not a dkv backup, or a version this build does not read.
    #[error("not a dkv backup file (bad magic)")]
    Magic,
    /// A length field is out of bounds.
    #[error("{what} of {len} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Which field.
        what: &'static str,
        /// Its value.
        len: u64,
        /// The bound.
        limit: u64,
    },
    /// A checksum does not match: the file is corrupt.
    #[error("{0}: checksum mismatch (the file is corrupt)")]
    Checksum(&'static str),
    /// The header is not valid JSON of a [`BackupHeader`].
    #[error("bad header: {0}")]
    Header(String),
    /// The trailer disagrees with the chunks read.
    #[error("payload is {read} bytes but the trailer says {said}")]
    Length {
        /// Bytes of payload read.
        read: u64,
        /// Bytes the trailer names.
        said: u64,
    },
    /// Bytes follow the trailer.
    #[error("data after the end of the backup")]
    Trailing,
}

/// The magic and the header, as they start the file.
pub fn encode_header(header: &BackupHeader) -> Bytes {
    let json = serde_json::to_vec(header).unwrap_or_default();
    let mut out = BytesMut::with_capacity(MAGIC.len() + json.len() + 8);
    out.put_slice(MAGIC);
    out.put_u32_le(json.len() as u32);
    out.put_slice(&json);
    out.put_u32_le(crc32c::crc32c(&json));
    out.freeze()
}

/// One payload chunk, framed. Empty chunks are not written (a zero length
/// ends the chunks).
pub fn encode_chunk(data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + 8);
    out.put_u32_le(data.len() as u32);
    out.put_slice(data);
    out.put_u32_le(crc32c::crc32c(data));
    out.freeze()
}

/// The end of the chunks and the trailer over the whole payload.
pub fn encode_trailer(total: u64, crc: u32) -> Bytes {
    let mut out = BytesMut::with_capacity(16);
    out.put_u32_le(0);
    out.put_u64_le(total);
    out.put_u32_le(crc);
    out.freeze()
}

/// Frames a payload given in chunks: what [`BackupWriter::push`] returns is
/// written out in order, then [`BackupWriter::finish`]'s trailer.
#[derive(Debug, Default)]
pub struct BackupWriter {
    total: u64,
    crc: u32,
}

impl BackupWriter {
    /// The framed chunk for `data` (`None` for an empty one).
    pub fn push(&mut self, data: &[u8]) -> Option<Bytes> {
        if data.is_empty() {
            return None;
        }
        self.total += data.len() as u64;
        self.crc = crc32c::crc32c_append(self.crc, data);
        // A chunk over the reader's bound would make the file unreadable:
        // split it.
        if data.len() > MAX_CHUNK_BYTES as usize {
            let mut out = BytesMut::new();
            for part in data.chunks(MAX_CHUNK_BYTES as usize) {
                out.extend_from_slice(&encode_chunk(part));
            }
            return Some(out.freeze());
        }
        Some(encode_chunk(data))
    }

    /// The trailer.
    pub fn finish(self) -> Bytes {
        encode_trailer(self.total, self.crc)
    }
}

/// Reads and checks a backup file as it goes.
pub struct BackupReader<R> {
    input: R,
    total: u64,
    crc: u32,
    done: bool,
}

fn read_u32(input: &mut impl Read) -> Result<u32, BackupError> {
    let mut b = [0u8; 4];
    input.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_u64(input: &mut impl Read) -> Result<u64, BackupError> {
    let mut b = [0u8; 8];
    input.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

fn read_bytes(input: &mut impl Read, len: u32) -> Result<Vec<u8>, BackupError> {
    let mut data = vec![0u8; len as usize];
    input.read_exact(&mut data)?;
    Ok(data)
}

impl<R: Read> BackupReader<R> {
    /// Reads the magic and the header.
    ///
    /// # Errors
    /// Not a backup, a corrupt or oversized header, or a read error.
    pub fn open(mut input: R) -> Result<(BackupReader<R>, BackupHeader), BackupError> {
        let mut magic = [0u8; MAGIC.len()];
        input.read_exact(&mut magic).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                BackupError::Magic
            } else {
                BackupError::Io(e)
            }
        })?;
        if &magic != MAGIC {
            return Err(BackupError::Magic);
        }
        let len = read_u32(&mut input)?;
        if len > MAX_HEADER_BYTES {
            return Err(BackupError::TooLarge {
                what: "header",
                len: len.into(),
                limit: MAX_HEADER_BYTES.into(),
            });
        }
        let json = read_bytes(&mut input, len)?;
        if read_u32(&mut input)? != crc32c::crc32c(&json) {
            return Err(BackupError::Checksum("header"));
        }
        let header: BackupHeader =
            serde_json::from_slice(&json).map_err(|e| BackupError::Header(e.to_string()))?;
        Ok((
            BackupReader {
                input,
                total: 0,
                crc: 0,
                done: false,
            },
            header,
        ))
    }

    /// The next payload chunk, checked; `None` once the trailer was read and
    /// matched (and nothing follows it).
    ///
    /// # Errors
    /// Corruption, truncation, trailing data or a read error.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, BackupError> {
        if self.done {
            return Ok(None);
        }
        let len = read_u32(&mut self.input)?;
        if len == 0 {
            let said = read_u64(&mut self.input)?;
            let crc = read_u32(&mut self.input)?;
            if said != self.total {
                return Err(BackupError::Length {
                    read: self.total,
                    said,
                });
            }
            if crc != self.crc {
                return Err(BackupError::Checksum("payload"));
            }
            let mut extra = [0u8; 1];
            if self.input.read(&mut extra)? != 0 {
                return Err(BackupError::Trailing);
            }
            self.done = true;
            return Ok(None);
        }
        if len > MAX_CHUNK_BYTES {
            return Err(BackupError::TooLarge {
                what: "chunk",
                len: len.into(),
                limit: MAX_CHUNK_BYTES.into(),
            });
        }
        let data = read_bytes(&mut self.input, len)?;
        if read_u32(&mut self.input)? != crc32c::crc32c(&data) {
            return Err(BackupError::Checksum("chunk"));
        }
        self.total += u64::from(len);
        self.crc = crc32c::crc32c_append(self.crc, &data);
        Ok(Some(data))
    }

    /// Reads to the end, checking everything; returns the payload's length.
    ///
    /// # Errors
    /// As [`BackupReader::next_chunk`].
    pub fn verify(mut self) -> Result<u64, BackupError> {
        while self.next_chunk()?.is_some() {}
        Ok(self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> BackupHeader {
        BackupHeader {
            cluster_id: "c".into(),
            taken_by: 2,
            index: 41,
            term: 3,
            unix_ms: 1_700_000_000_000,
        }
    }

    fn file(chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = encode_header(&header()).to_vec();
        let mut writer = BackupWriter::default();
        for chunk in chunks {
            if let Some(framed) = writer.push(chunk) {
                out.extend_from_slice(&framed);
            }
        }
        out.extend_from_slice(&writer.finish());
        out
    }

    fn read_all(bytes: &[u8]) -> Result<(BackupHeader, Vec<u8>), BackupError> {
        let (mut reader, header) = BackupReader::open(bytes)?;
        let mut payload = Vec::new();
        while let Some(chunk) = reader.next_chunk()? {
            payload.extend_from_slice(&chunk);
        }
        Ok((header, payload))
    }

    #[test]
    fn a_backup_reads_back_its_header_and_payload() {
        let bytes = file(&[b"hello ", b"", b"world"]);
        let (h, payload) = read_all(&bytes).expect("valid");
        assert_eq!(h, header());
        assert_eq!(payload, b"hello world");
        let empty = file(&[]);
        assert_eq!(read_all(&empty).expect("valid").1, b"");
    }

    #[test]
    fn every_flipped_byte_and_every_truncation_is_refused() {
        let bytes = file(&[b"some payload", b"more payload"]);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(read_all(&bad).is_err(), "flipped byte {i} was accepted");
            assert!(
                read_all(&bytes[..i]).is_err(),
                "a file cut at {i} of {} was accepted",
                bytes.len()
            );
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(read_all(&trailing), Err(BackupError::Trailing)));
    }

    #[test]
    fn hostile_lengths_are_refused_before_allocating() {
        let mut bad = MAGIC.to_vec();
        bad.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            BackupReader::open(&bad[..]),
            Err(BackupError::TooLarge { what: "header", .. })
        ));
        let mut bad = encode_header(&header()).to_vec();
        bad.extend_from_slice(&(MAX_CHUNK_BYTES + 1).to_le_bytes());
        let (mut reader, _) = BackupReader::open(&bad[..]).expect("header is fine");
        assert!(matches!(
            reader.next_chunk(),
            Err(BackupError::TooLarge { what: "chunk", .. })
        ));
        assert!(matches!(
            BackupReader::open(&b"REDIS0011"[..]),
            Err(BackupError::Magic)
        ));
    }
}
