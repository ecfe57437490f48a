//! The file layer under the WAL and the snapshot files: a small trait
//! ([`StorageFs`] / [`StorageFile`]) with the real implementation ([`RealFs`],
//! `std::fs` + `fdatasync`) and a fault-injecting one for tests ([`FaultyFs`]).
//!
//! # What it owns
//!
//! Nothing durable of its own: it is the seam through which every byte the
//! store writes passes, so tests can decide what a crash keeps.
//!
//! # The crash model of [`FaultyFs`]
//!
//! [`FaultyFs`] is an in-memory filesystem that keeps, for every file, the
//! bytes a reader sees *and* the bytes that would survive a power cut, and for
//! every directory the names that are durable:
//!
//! - `sync_data`/`sync_all` on a file make its current bytes durable;
//! - creating, renaming or removing a name is durable only after `sync_dir` on
//!   its parent directory (POSIX: a new file's directory entry needs a
//!   directory fsync); directories themselves are always durable;
//! - [`FaultyFs::power_cut`] drops everything unsynced: each file goes back to
//!   its durable bytes and each directory to its durable names;
//!   [`FaultyFs::power_cut_tearing`] additionally keeps the first `n` unsynced
//!   bytes appended to each file (a torn last write);
//! - [`FaultyFs::flip_bit`] damages a file's bytes (seen and durable);
//! - [`FaultyFs::fail_next_sync`] / [`FaultyFs::fail_next_write`] make the next
//!   call fail with `EIO` (the store must poison itself; nothing becomes
//!   durable).
//!
//! It never panics on its inputs: a missing path is `NotFound`, as on a disk.
//! The lock ([`StorageFs::lock`]) is an in-process set of held paths.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// An open file. All offsets are byte offsets from the start of the file.
#[allow(clippy::len_without_is_empty)] // a file's emptiness is not a question the WAL asks
pub trait StorageFile: Send + fmt::Debug {
    /// Writes all of `data` at `offset` (growing the file if needed).
    ///
    /// # Errors
    /// The OS error.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Writes all of `data` at the current end of the file.
    ///
    /// # Errors
    /// The OS error.
    fn append(&mut self, data: &[u8]) -> io::Result<()>;
    /// Reads up to `buf.len()` bytes at `offset`; 0 means end of file.
    ///
    /// # Errors
    /// The OS error.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// The file's length in bytes.
    ///
    /// # Errors
    /// The OS error.
    fn len(&mut self) -> io::Result<u64>;
    /// Truncates or zero-extends the file.
    ///
    /// # Errors
    /// The OS error.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// `fdatasync`: the data (and the length) are durable when this returns `Ok`.
    ///
    /// # Errors
    /// The OS error; the caller must never retry (module doc of `wal.rs`).
    fn sync_data(&mut self) -> io::Result<()>;
}

/// A held directory lock; released when dropped.
pub struct FsLock(#[allow(dead_code)] Box<dyn std::any::Any + Send>);

impl fmt::Debug for FsLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FsLock")
    }
}

/// The filesystem operations the store uses.
pub trait StorageFs: Send + Sync + fmt::Debug {
    /// Creates `dir` and its parents (no error if it exists).
    ///
    /// # Errors
    /// The OS error.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Whether `path` is an existing directory.
    fn is_dir(&self, path: &Path) -> bool;
    /// Creates a new, empty file; fails if it exists.
    ///
    /// # Errors
    /// `AlreadyExists`, or the OS error.
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Opens an existing file for reading and writing.
    ///
    /// # Errors
    /// `NotFound`, or the OS error.
    fn open(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// The whole content of a file.
    ///
    /// # Errors
    /// `NotFound`, or the OS error.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Renames `from` to `to`, replacing `to`.
    ///
    /// # Errors
    /// The OS error.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    ///
    /// # Errors
    /// The OS error.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    ///
    /// # Errors
    /// The OS error.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// The names of the files directly in `dir`.
    ///
    /// # Errors
    /// The OS error.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Takes an exclusive lock on `path` (created if missing). `Ok(None)`: held
    /// by someone else.
    ///
    /// # Errors
    /// The OS error.
    fn lock(&self, path: &Path) -> io::Result<Option<FsLock>>;
}

/// The shared handle the store keeps.
pub type SharedFs = Arc<dyn StorageFs>;

/// The real filesystem.
pub fn real_fs() -> SharedFs {
    Arc::new(RealFs)
}

// ---------------------------------------------------------------------------
// RealFs

/// `std::fs`, `pwrite`, `fdatasync` and `flock`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

/// A real file.
#[derive(Debug)]
struct RealFile(File);

impl StorageFile for RealFile {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.0.write_all_at(data, offset)
    }
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        let len = self.0.metadata()?.len();
        self.0.write_all_at(data, len)
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }
    fn len(&mut self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
}

impl StorageFs for RealFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }
    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(Box::new(RealFile(file)))
    }
    fn open(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Box::new(RealFile(file)))
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                if let Some(name) = entry.file_name().to_str() {
                    names.push(name.to_string());
                }
            }
        }
        Ok(names)
    }
    fn lock(&self, path: &Path) -> io::Result<Option<FsLock>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        // SAFETY: the descriptor is valid while `file` lives; flock touches no
        // memory of ours.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let error = io::Error::last_os_error();
            if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Ok(None);
            }
            return Err(error);
        }
        // Closing the file releases the flock.
        Ok(Some(FsLock(Box::new(file))))
    }
}

// ---------------------------------------------------------------------------
// FaultyFs

#[derive(Debug, Default)]
struct Inode {
    /// What reads see.
    data: Vec<u8>,
    /// What a power cut keeps.
    durable: Vec<u8>,
}

#[derive(Debug, Default)]
struct FaultyState {
    inodes: HashMap<u64, Inode>,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    dirs: BTreeSet<PathBuf>,
    next_inode: u64,
    locks: BTreeSet<PathBuf>,
    fail_next_sync: bool,
    fail_next_write: bool,
    syncs_total: u64,
}

/// An in-memory filesystem with injectable faults; see the module doc. Clones
/// share the same files.
#[derive(Clone, Debug, Default)]
pub struct FaultyFs {
    state: Arc<Mutex<FaultyState>>,
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("injected {what} failure (EIO)"))
}

impl FaultyFs {
    /// An empty filesystem.
    pub fn new() -> FaultyFs {
        FaultyFs::default()
    }

    /// This filesystem as the store's shared handle.
    pub fn shared(&self) -> SharedFs {
        Arc::new(self.clone())
    }

    fn state(&self) -> MutexGuard<'_, FaultyState> {
        // A test that panicked while holding the lock left consistent data:
        // every mutation below is a single assignment.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A power cut: every unsynced byte and directory change is lost.
    pub fn power_cut(&self) {
        self.power_cut_tearing(0);
    }

    /// A power cut during the last write: for each file whose unsynced bytes
    /// extend its durable bytes (an append), the first `keep_unsynced_bytes` of
    /// them survive; everything else unsynced is lost. Locks are released (the
    /// process died).
    pub fn power_cut_tearing(&self, keep_unsynced_bytes: u64) {
        let mut state = self.state();
        let durable_names = state.durable_names.clone();
        let reachable: BTreeSet<u64> = durable_names.values().copied().collect();
        state.inodes.retain(|id, _| reachable.contains(id));
        for inode in state.inodes.values_mut() {
            let appended = inode.data.len() > inode.durable.len()
                && inode.data[..inode.durable.len()] == inode.durable[..];
            if appended && keep_unsynced_bytes > 0 {
                let keep = (inode.durable.len() as u64 + keep_unsynced_bytes)
                    .min(inode.data.len() as u64) as usize;
                inode.data.truncate(keep);
                inode.durable = inode.data.clone();
            } else {
                inode.data = inode.durable.clone();
            }
        }
        state.names = durable_names;
        state.locks.clear();
    }

    /// Flips bit `bit % 8` of byte `offset` of `path` (seen and durable bytes).
    /// Returns false if there is no such byte.
    pub fn flip_bit(&self, path: &Path, offset: u64, bit: u8) -> bool {
        let mut state = self.state();
        let Some(&id) = state.names.get(path) else {
            return false;
        };
        let Some(inode) = state.inodes.get_mut(&id) else {
            return false;
        };
        let mask = 1u8 << (bit % 8);
        let offset = offset as usize;
        let mut hit = false;
        if let Some(byte) = inode.data.get_mut(offset) {
            *byte ^= mask;
            hit = true;
        }
        if let Some(byte) = inode.durable.get_mut(offset) {
            *byte ^= mask;
        }
        hit
    }

    /// The next `sync_data` or `sync_dir` fails with an I/O error (nothing
    /// becomes durable).
    pub fn fail_next_sync(&self) {
        self.state().fail_next_sync = true;
    }

    /// The next write, append or `set_len` fails with an I/O error and changes
    /// nothing.
    pub fn fail_next_write(&self) {
        self.state().fail_next_write = true;
    }

    /// Cancels a [`FaultyFs::fail_next_sync`] / [`FaultyFs::fail_next_write`]
    /// that no call has hit yet.
    pub fn disarm(&self) {
        let mut state = self.state();
        state.fail_next_sync = false;
        state.fail_next_write = false;
    }

    /// Successful `sync_data` calls so far.
    pub fn syncs_total(&self) -> u64 {
        self.state().syncs_total
    }

    /// The bytes a reader of `path` sees.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.state();
        let id = state.names.get(path)?;
        state.inodes.get(id).map(|inode| inode.data.clone())
    }

    /// Replaces the content of `path` (seen and durable), creating it durably.
    pub fn put(&self, path: &Path, bytes: &[u8]) {
        let mut state = self.state();
        let id = match state.names.get(path) {
            Some(&id) => id,
            None => {
                state.next_inode += 1;
                let id = state.next_inode;
                state.names.insert(path.to_path_buf(), id);
                state.durable_names.insert(path.to_path_buf(), id);
                id
            }
        };
        state.durable_names.insert(path.to_path_buf(), id);
        let inode = state.inodes.entry(id).or_default();
        inode.data = bytes.to_vec();
        inode.durable = bytes.to_vec();
    }

    /// Names of the files in `dir`, sorted.
    pub fn files_in(&self, dir: &Path) -> Vec<PathBuf> {
        self.state()
            .names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .cloned()
            .collect()
    }
}

#[derive(Debug)]
struct FaultyFile {
    fs: FaultyFs,
    inode: u64,
}

impl FaultyFile {
    fn with_inode<T>(&self, f: impl FnOnce(&mut Inode) -> T) -> io::Result<T> {
        let mut state = self.fs.state();
        let inode = state
            .inodes
            .get_mut(&self.inode)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "file lost in a power cut"))?;
        Ok(f(inode))
    }

    fn check_write(&self) -> io::Result<()> {
        let mut state = self.fs.state();
        if std::mem::take(&mut state.fail_next_write) {
            return Err(injected("write"));
        }
        Ok(())
    }
}

fn write_into(data: &mut Vec<u8>, offset: u64, bytes: &[u8]) {
    let start = offset as usize;
    let end = start + bytes.len();
    if data.len() < end {
        data.resize(end, 0);
    }
    data[start..end].copy_from_slice(bytes);
}

impl StorageFile for FaultyFile {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.check_write()?;
        self.with_inode(|inode| write_into(&mut inode.data, offset, data))
    }
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.check_write()?;
        self.with_inode(|inode| inode.data.extend_from_slice(data))
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.with_inode(|inode| {
            let start = (offset as usize).min(inode.data.len());
            let n = buf.len().min(inode.data.len() - start);
            buf[..n].copy_from_slice(&inode.data[start..start + n]);
            n
        })
    }
    fn len(&mut self) -> io::Result<u64> {
        self.with_inode(|inode| inode.data.len() as u64)
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.check_write()?;
        self.with_inode(|inode| inode.data.resize(len as usize, 0))
    }
    fn sync_data(&mut self) -> io::Result<()> {
        {
            let mut state = self.fs.state();
            if std::mem::take(&mut state.fail_next_sync) {
                return Err(injected("fdatasync"));
            }
            state.syncs_total += 1;
        }
        self.with_inode(|inode| inode.durable = inode.data.clone())
    }
}

impl StorageFs for FaultyFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state();
        for ancestor in dir.ancestors() {
            if !ancestor.as_os_str().is_empty() {
                state.dirs.insert(ancestor.to_path_buf());
            }
        }
        Ok(())
    }
    fn is_dir(&self, path: &Path) -> bool {
        self.state().dirs.contains(path)
    }
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let mut state = self.state();
        if state.names.contains_key(path) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists", path.display()),
            ));
        }
        if let Some(parent) = path.parent() {
            if !state.dirs.contains(parent) {
                return Err(not_found(parent));
            }
        }
        state.next_inode += 1;
        let id = state.next_inode;
        state.inodes.insert(id, Inode::default());
        state.names.insert(path.to_path_buf(), id);
        Ok(Box::new(FaultyFile {
            fs: self.clone(),
            inode: id,
        }))
    }
    fn open(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let state = self.state();
        let id = *state.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(Box::new(FaultyFile {
            fs: self.clone(),
            inode: id,
        }))
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.contents(path).ok_or_else(|| not_found(path))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state();
        let id = state.names.remove(from).ok_or_else(|| not_found(from))?;
        state.names.insert(to.to_path_buf(), id);
        Ok(())
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state();
        state.names.remove(path).ok_or_else(|| not_found(path))?;
        Ok(())
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state();
        if std::mem::take(&mut state.fail_next_sync) {
            return Err(injected("directory fsync"));
        }
        if !state.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let in_dir = |p: &PathBuf| p.parent() == Some(dir);
        state.durable_names.retain(|p, _| !in_dir(p));
        let current: Vec<(PathBuf, u64)> = state
            .names
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, id)| (p.clone(), *id))
            .collect();
        state.durable_names.extend(current);
        Ok(())
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let state = self.state();
        if !state.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        Ok(state
            .names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .collect())
    }
    fn lock(&self, path: &Path) -> io::Result<Option<FsLock>> {
        let mut state = self.state();
        if !state.locks.insert(path.to_path_buf()) {
            return Ok(None);
        }
        Ok(Some(FsLock(Box::new(FaultyLock {
            fs: self.clone(),
            path: path.to_path_buf(),
        }))))
    }
}

struct FaultyLock {
    fs: FaultyFs,
    path: PathBuf,
}

impl Drop for FaultyLock {
    fn drop(&mut self) {
        self.fs.state().locks.remove(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_cut_keeps_only_synced_bytes_and_names() {
        let fs = FaultyFs::new();
        let dir = Path::new("/d");
        fs.create_dir_all(dir).expect("mkdir");
        let mut a = fs.create_new(&dir.join("a")).expect("create");
        a.append(b"hello").expect("append");
        a.sync_data().expect("sync");
        fs.sync_dir(dir).expect("sync dir");
        a.append(b" world").expect("append");
        let mut b = fs.create_new(&dir.join("b")).expect("create");
        b.append(b"lost").expect("append");
        b.sync_data().expect("sync");
        fs.power_cut();
        assert_eq!(fs.read(&dir.join("a")).expect("read"), b"hello");
        assert!(
            fs.read(&dir.join("b")).is_err(),
            "b's name was never synced"
        );
    }

    #[test]
    fn torn_power_cut_keeps_a_prefix_of_the_append() {
        let fs = FaultyFs::new();
        let dir = Path::new("/d");
        fs.create_dir_all(dir).expect("mkdir");
        let mut a = fs.create_new(&dir.join("a")).expect("create");
        fs.sync_dir(dir).expect("sync dir");
        a.append(b"abc").expect("append");
        a.sync_data().expect("sync");
        a.append(b"defgh").expect("append");
        fs.power_cut_tearing(2);
        assert_eq!(fs.read(&dir.join("a")).expect("read"), b"abcde");
    }

    #[test]
    fn unsynced_rename_reverts_and_injected_failures_fail_once() {
        let fs = FaultyFs::new();
        let dir = Path::new("/d");
        fs.create_dir_all(dir).expect("mkdir");
        let mut a = fs.create_new(&dir.join("tmp")).expect("create");
        a.append(b"x").expect("append");
        a.sync_data().expect("sync");
        fs.sync_dir(dir).expect("sync dir");
        fs.rename(&dir.join("tmp"), &dir.join("final"))
            .expect("rename");
        fs.power_cut();
        assert_eq!(fs.list(dir).expect("list"), vec!["tmp".to_string()]);
        let mut a = fs.open(&dir.join("tmp")).expect("open");
        fs.fail_next_sync();
        assert!(a.sync_data().is_err());
        a.sync_data().expect("second sync");
        fs.fail_next_write();
        assert!(a.append(b"y").is_err());
        assert_eq!(fs.read(&dir.join("tmp")).expect("read"), b"x");
        assert!(fs.flip_bit(&dir.join("tmp"), 0, 0));
        assert_eq!(fs.read(&dir.join("tmp")).expect("read"), b"y");
    }

    #[test]
    fn lock_is_exclusive_until_dropped() {
        let fs = FaultyFs::new();
        let first = fs.lock(Path::new("/d/LOCK")).expect("lock");
        assert!(first.is_some());
        assert!(fs.lock(Path::new("/d/LOCK")).expect("lock").is_none());
        drop(first);
        assert!(fs.lock(Path::new("/d/LOCK")).expect("lock").is_some());
    }
}
