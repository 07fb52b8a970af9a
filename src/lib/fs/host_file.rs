//! Reading a host file into the records of a tree file, for `sync` and `put`.
//!
//! Only the file's data extents are read, found with lseek SEEK_DATA and SEEK_HOLE: a
//! record that lies wholly in a hole is neither read nor stored, and a stored record that
//! now lies in a hole is punched, so a sparse file costs its data and the records it had,
//! never its apparent size. Where the file system cannot say (EINVAL), the whole file is
//! read, and all-zero records still become holes in the pipeline.
//!
//! A file written while it is read would be stored torn, pieces of several versions in
//! one file. Its state (size, mtime, ctime, device and inode) is taken before the read
//! and after it, on the open file and on its path; if the two differ the file is read
//! again, up to READ_ATTEMPTS_MAX times in all. A file that never holds still is stored as
//! last read, and the caller is told so, to warn as tar does ("file changed as we read
//! it"). Like tar's, the test trusts the kernel's timestamps: a change within one clock
//! tick that leaves the size alone goes unseen.
//!
//! Invariant kept for the tree: every record but the file's last is RECORD_BYTES long,
//! even when a read comes up short because the file shrank meanwhile (the rest is zero,
//! and the shrink is seen as a change).

use super::FsTree;
use super::inode::{ItemKind, Timespec, key};
use super::pipeline::drain;
use super::pipeline::{IN_FLIGHT_MAX, Job, Pipeline};
use super::record::RECORD_BYTES;
use crate::error::{Error, Result};
use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Reads of one file before it is stored as it was last read, changed or not.
pub const READ_ATTEMPTS_MAX: u32 = 3;

/// What tells one version of a file from another without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileState {
    pub size: u64,
    pub mtime: Timespec,
    pub ctime: Timespec,
    pub dev: u64,
    pub ino: u64,
}

impl FileState {
    pub fn of(meta: &Metadata) -> FileState {
        FileState {
            size: meta.size(),
            mtime: Timespec { sec: meta.mtime(), nsec: meta.mtime_nsec() as u32 },
            ctime: Timespec { sec: meta.ctime(), nsec: meta.ctime_nsec() as u32 },
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// True if a read between `before` and `after` (the open file's states) saw one version:
/// nothing changed, the read came up to the size it expected, and the path still names
/// the file that was read (`path_now`; None when it is gone).
pub fn read_was_stable(before: &FileState, after: &FileState, path_now: Option<&FileState>, short_read: bool) -> bool {
    let same_file = path_now.is_some_and(|p| p.dev == after.dev && p.ino == after.ino);
    before == after && same_file && !short_read
}

/// How the path was given: found by `sync`'s walk as a regular file (anything else there
/// now means the source changed), or named by the operator (symlinks are followed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Naming {
    Walked,
    Operator,
}

/// The outcome of reading one host file.
pub struct HostRead {
    /// The open file's metadata before the last read: the version the records hold, when
    /// `stable`; its times are older than any change it missed, so a later sync reads again.
    pub metadata: Metadata,
    /// The file's size as stored.
    pub size: u64,
    /// Bytes read from the host, every attempt counted.
    pub bytes_read: u64,
    /// False when the file changed during every attempt: the records may mix versions.
    pub stable: bool,
}

/// Reads the host file at `path` into the records of tree inode `ino` (whose size the
/// caller sets from the result); records may still be in the pipeline when it returns.
pub fn read_into(fs: &mut FsTree, pipeline: &mut Pipeline, ino: u64, path: &Path, naming: Naming) -> Result<HostRead> {
    let mut bytes_read = 0;
    for attempt in 1..=READ_ATTEMPTS_MAX {
        if attempt > 1 {
            // Every record of the attempt before is applied, so that the punch pass below
            // sees them all and none lands after it.
            drain(fs, pipeline, 0)?;
        }
        // Each open names a file that was there a moment ago (sync's walk, put's first
        // open): an error now says the source changed.
        let file = open(path, naming).map_err(|e| host_error(path, "open", e))?;
        let metadata = file.metadata().map_err(|e| host_error(path, "stat", e))?;
        if !metadata.is_file() {
            return Err(not_regular(path, naming));
        }
        let before = FileState::of(&metadata);
        let pass = read_extents(fs, pipeline, ino, (&file, path), before.size)?;
        bytes_read += pass.bytes_read;
        let after = FileState::of(&file.metadata().map_err(|e| host_error(path, "stat", e))?);
        let path_now = stat_path(path, naming).map_err(|e| host_error(path, "stat", e))?;
        let stable = read_was_stable(&before, &after, path_now.as_ref(), pass.short_read);
        if stable || attempt == READ_ATTEMPTS_MAX {
            return Ok(HostRead { metadata, size: before.size, bytes_read, stable });
        }
    }
    unreachable!("the last attempt returns")
}

fn open(path: &Path, naming: Naming) -> io::Result<File> {
    // O_NONBLOCK: a FIFO put where a file was does not hang the read; it is refused below.
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
    if naming == Naming::Walked {
        flags |= libc::O_NOFOLLOW;
    }
    OpenOptions::new().read(true).custom_flags(flags).open(path)
}

/// Opens a host file the operator named, refusing anything but a regular file.
pub fn open_named(path: &Path) -> Result<File> {
    let file = open(path, Naming::Operator).map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
    let metadata = file.metadata().map_err(|e| Error::io(format!("cannot stat {}", path.display()), e))?;
    if !metadata.is_file() {
        return Err(not_regular(path, Naming::Operator));
    }
    Ok(file)
}

fn not_regular(path: &Path, naming: Naming) -> Error {
    match naming {
        Naming::Walked => Error::source_changed(path, "it is no longer a regular file"),
        Naming::Operator => {
            Error::invalid(format!("{} is not a regular file; use sync for directories", path.display()))
        }
    }
}

/// The state of what the path names now; None if nothing.
fn stat_path(path: &Path, naming: Naming) -> io::Result<Option<FileState>> {
    let meta = match naming {
        Naming::Walked => fs::symlink_metadata(path),
        Naming::Operator => fs::metadata(path),
    };
    match meta {
        Ok(m) => Ok(Some(FileState::of(&m))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// An error on a host path that was there a moment ago: if it says the path is gone or
/// is now of another type, the source changed under the command; else an I/O error.
pub fn host_error(path: &Path, what: &str, e: io::Error) -> Error {
    let change = match e.raw_os_error() {
        Some(libc::ENOENT) => "it vanished",
        Some(libc::ENOTDIR) => "it or a directory above it is no longer a directory",
        Some(libc::EISDIR) => "it is now a directory",
        // Opened with O_NOFOLLOW: a symlink where the walk saw a file.
        Some(libc::ELOOP) => "it is now a symlink",
        // A socket cannot be opened.
        Some(libc::ENXIO) => "it is now a socket",
        _ => return Error::io(format!("cannot {what} {}", path.display()), e),
    };
    Error::source_changed(path, change)
}

struct Pass {
    bytes_read: u64,
    /// A read ended before `size`: the file shrank while it was read.
    short_read: bool,
}

/// One read of the file's data extents below `size` into records; then punches the
/// records the file had that no extent covers now. Errors of the host file name `path`;
/// errors of the pool (in `drain`) stay the pool's.
fn read_extents(
    fs: &mut FsTree,
    pipeline: &mut Pipeline,
    ino: u64,
    (file, path): (&File, &Path),
    size: u64,
) -> Result<Pass> {
    let mut pass = Pass { bytes_read: 0, short_read: false };
    // Indices of the records read, as [first, end) runs in increasing order.
    let mut runs: Vec<(u64, u64)> = Vec::new();
    let mut at = 0u64;
    while at < size {
        // A file of one record is read as it is: two seeks would cost more than the read.
        let extent = match size <= RECORD_BYTES {
            true => Some((0, size)),
            false => next_extent(file, at, size).map_err(|e| host_error(path, "find the data of", e))?,
        };
        let Some((start, end)) = extent else { break };
        let first = (start / RECORD_BYTES).max(runs.last().map_or(0, |r| r.1));
        let last_end = end.div_ceil(RECORD_BYTES);
        for index in first..last_end {
            let offset = index * RECORD_BYTES;
            let len = (size - offset).min(RECORD_BYTES) as usize;
            let data = read_record(file, len, offset).map_err(|e| host_error(path, "read", e))?;
            pass.short_read |= data.len() < len;
            pass.bytes_read += data.len() as u64;
            // A short read leaves the rest zero, keeping every record but the last whole.
            let mut data = data;
            data.resize(len, 0);
            drain(fs, pipeline, IN_FLIGHT_MAX - 1)?;
            pipeline.submit(Job { ino, index, data });
        }
        match runs.last_mut() {
            Some(run) if run.1 == first => run.1 = last_end,
            _ if first < last_end => runs.push((first, last_end)),
            _ => {}
        }
        // Past the last record read: an extent that starts inside it was read with it.
        at = last_end * RECORD_BYTES;
    }
    punch_outside(fs, ino, &runs)?;
    Ok(pass)
}

/// Punches the records of `ino` in the gaps between `runs` (sorted, disjoint): those in
/// what is now a hole or past the end. One tree scan per gap, over the records it holds:
/// the cost follows the runs and the records punched, not the size or the records kept.
fn punch_outside(fs: &mut FsTree, ino: u64, runs: &[(u64, u64)]) -> Result<()> {
    let mut gap_first = 0;
    for &(first, end) in runs.iter().chain(std::iter::once(&(u64::MAX, u64::MAX))) {
        if gap_first < first {
            for index in record_indices(fs, ino, gap_first, first)? {
                fs.punch_record(ino, index)?;
            }
        }
        gap_first = end;
    }
    Ok(())
}

/// Indices of the records of `ino` in [first, end), in one scan from the first.
fn record_indices(fs: &mut FsTree, ino: u64, first: u64, end: u64) -> Result<Vec<u64>> {
    let prefix = key(ino, ItemKind::Record, &[]);
    let mut out = Vec::new();
    fs.tree.scan(fs.store, &key(ino, ItemKind::Record, &first.to_be_bytes()), &mut |k, _| {
        let Some(suffix) = k.strip_prefix(prefix.as_slice()) else { return Ok(false) };
        let index_bytes: [u8; 8] = suffix.try_into().map_err(|_| Error::corrupt("record key of the wrong length"))?;
        let index = u64::from_be_bytes(index_bytes);
        if index >= end {
            return Ok(false);
        }
        out.push(index);
        Ok(true)
    })?;
    Ok(out)
}

/// The next data extent at or after `at`, clipped to `size`; None if only holes remain.
/// Where the file system cannot tell data from holes, the rest of the file is data.
fn next_extent(file: &File, at: u64, size: u64) -> io::Result<Option<(u64, u64)>> {
    let start = match seek(file, at, libc::SEEK_DATA) {
        Ok(start) => start,
        // ENXIO: no data from `at` to the end of the file.
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(Some((at, size))),
        Err(e) => return Err(e),
    };
    if start >= size {
        return Ok(None);
    }
    let end = match seek(file, start, libc::SEEK_HOLE) {
        Ok(end) => end,
        // The file shrank past `start` since: read to `size`, the short read tells.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENXIO | libc::EINVAL)) => size,
        Err(e) => return Err(e),
    };
    Ok(Some((start, end.clamp(start + 1, size))))
}

fn seek(file: &File, offset: u64, whence: i32) -> io::Result<u64> {
    let offset = libc::off_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: lseek on a descriptor we own; it moves only the file offset, which the
    // positioned reads here do not use.
    let r = unsafe { libc::lseek(file.as_raw_fd(), offset, whence) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r as u64) }
}

/// Reads up to `len` bytes at `offset`, until the file ends: a record's bytes, in a
/// buffer the read fills without zeroing it first (a memset of every byte read).
fn read_record(file: &File, len: usize, offset: u64) -> io::Result<Vec<u8>> {
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    while buf.len() < len {
        let filled = buf.len();
        let at =
            libc::off_t::try_from(offset + filled as u64).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: pread writes at most `len - filled` bytes into the spare capacity past
        // `filled`, which the Vec owns; only what it wrote is marked initialized below.
        let n = unsafe {
            libc::pread(file.as_raw_fd(), buf.as_mut_ptr().add(filled) as *mut libc::c_void, len - filled, at)
        };
        match n {
            0 => break,
            n if n > 0 => {
                // SAFETY: pread initialized `n` bytes past `filled`, and n <= len - filled.
                unsafe { buf.set_len(filled + n as usize) };
            }
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> FileState {
        FileState {
            size: 1 << 20,
            mtime: Timespec { sec: 100, nsec: 5 },
            ctime: Timespec { sec: 100, nsec: 5 },
            dev: 8,
            ino: 42,
        }
    }

    // Goal: each thing a writer changes makes the read count as torn. Method: vary one
    // field of the after-state at a time.
    #[test]
    fn any_change_between_before_and_after_is_a_torn_read() {
        let before = state();
        assert!(read_was_stable(&before, &before, Some(&before), false));
        let changes: [fn(&mut FileState); 5] =
            [|s| s.size += 1, |s| s.mtime.nsec += 1, |s| s.ctime.sec += 1, |s| s.ino += 1, |s| s.dev += 1];
        for change in changes {
            let mut after = before;
            change(&mut after);
            assert!(!read_was_stable(&before, &after, Some(&after), false), "{after:?}");
        }
    }

    // Goal: a file renamed over, removed, or shrunk during the read is torn too, though
    // the open file's own state did not change.
    #[test]
    fn a_replaced_removed_or_shrunk_file_is_a_torn_read() {
        let s = state();
        let mut other = s;
        other.ino += 1;
        assert!(!read_was_stable(&s, &s, Some(&other), false));
        assert!(!read_was_stable(&s, &s, None, false));
        assert!(!read_was_stable(&s, &s, Some(&s), true));
    }
}
