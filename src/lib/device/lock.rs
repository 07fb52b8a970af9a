//! One writer per storage, whatever name each process opened it by.
//!
//! Locks live in files of a lock directory every snapfs process agrees on
//! (`/run/lock/snapfs`, or `$SNAPFS_LOCK_DIR`): one file per base that storage.rs
//! resolves (`file-DEV-INO`, `block-MAJ-MIN`), holding a POSIX record lock on exactly the
//! bytes of the base the device covers, a write lock (readers take none: they pin what
//! they read instead, pins.rs; no command takes `LockKind::Shared` any more). Byte ranges
//! give the overlap rules: two partitions of one disk do not
//! conflict, a partition and its disk do, a loop device with an offset and its file do.
//! A writer also locks `pool-GUIDHEX` once the label is read, which catches aliases no
//! resolution sees (and byte copies of a pool, which share its id).
//!
//! POSIX locks belong to a process, and closing any descriptor of a file drops all of the
//! process's locks on it; so each lock file is opened once per process and kept open
//! while any lock of this process is on it, and locks this process holds are checked
//! against each other here (the kernel would let them overlap). Lock files are never
//! deleted: a file removed while another process waits on it would split the lock.

use super::storage::{ByteRange, SYSFS_ROOT, resolve_path};
use crate::error::{DeviceError, Error, Result};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The environment variable that moves the lock directory (tests, or a system without
/// a writable /run/lock). Every process that may open the same storage must agree on it.
pub const LOCK_DIR_ENV: &str = "SNAPFS_LOCK_DIR";
pub const LOCK_DIR_DEFAULT: &str = "/run/lock/snapfs";

/// Tries of a lock whose holder is gone before F_GETLK could name it.
const LOCK_TRIES_MAX: u32 = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    Shared,
    Exclusive,
}

/// What a lock is taken on: a file name in the lock directory and a byte range of it.
#[derive(Clone, Debug)]
pub struct LockTarget {
    pub name: String,
    pub range: ByteRange,
}

/// Locks held until dropped.
pub struct HeldLocks {
    held: Vec<HeldId>,
}

impl Drop for HeldLocks {
    fn drop(&mut self) {
        for id in self.held.drain(..).rev() {
            release(id);
        }
    }
}

/// Who holds a conflicting lock.
pub struct Conflict {
    pub pid: Option<i32>,
    pub writing: bool,
    /// The holder's device path for the same storage, when /proc lets us see it.
    pub holder_path: Option<String>,
}

impl Conflict {
    pub fn holder(&self) -> String {
        let doing = if self.writing { "writing" } else { "reading" };
        match self.pid {
            Some(pid) if pid > 0 => format!("pid {pid} ({doing})"),
            _ => format!("another process ({doing})"),
        }
    }
}

pub fn lock_dir() -> PathBuf {
    match std::env::var_os(LOCK_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(LOCK_DIR_DEFAULT),
    }
}

/// Takes every target or none. `Err(Ok(conflict))` names the holder of the first target
/// that is taken elsewhere; `Err(Err(e))` is a lock directory that cannot be used.
pub fn acquire(targets: &[LockTarget], kind: LockKind) -> std::result::Result<HeldLocks, AcquireError> {
    acquire_in(&lock_dir(), targets, kind)
}

fn acquire_in(dir: &Path, targets: &[LockTarget], kind: LockKind) -> std::result::Result<HeldLocks, AcquireError> {
    prepare_dir(dir).map_err(AcquireError::Unusable)?;
    let mut held = HeldLocks { held: Vec::new() };
    for target in targets {
        held.held.push(acquire_one(dir, target, kind)?);
    }
    Ok(held)
}

/// `acquire`, waiting while another process holds a target as `wait` allows. On a
/// conflict that outlasts the wait: `Error::InUse` on `device`, the holder told by
/// `describe`.
pub fn acquire_waiting(
    targets: &[LockTarget],
    kind: LockKind,
    wait: &super::wait::WaitPolicy,
    device: &str,
    describe: impl Fn(&LockTarget, &Conflict) -> String,
) -> Result<HeldLocks> {
    let last = std::cell::RefCell::new(String::from("another process"));
    // Marked waiting from the first conflict until the locks are held (`mark_waiting`).
    let mut waiting = None;
    let held = wait.wait_for(
        || match acquire(targets, kind) {
            Ok(held) => Ok(Some(held)),
            Err(AcquireError::Conflict { target, conflict }) => {
                *last.borrow_mut() = describe(&target, &conflict);
                if waiting.is_none() && kind == LockKind::Exclusive {
                    waiting = mark_waiting(targets);
                }
                Ok(None)
            }
            Err(AcquireError::Unusable(e)) => Err(e),
        },
        || format!("{device}, held by {}", last.borrow()),
    )?;
    held.ok_or_else(|| Error::InUse { device: device.to_string(), holder: last.into_inner() })
}

/// The marks of writers waiting for `targets` (`mark_waiting`): a shared lock on the
/// same bytes of a lock file of their own, so that a writer that takes the pool again and
/// again (a subset snapshot's extraction, pool/extraction.rs) can let them in first.
fn waiting_targets(targets: &[LockTarget]) -> Vec<LockTarget> {
    targets.iter().map(|t| LockTarget { name: format!("{}.waiting", t.name), range: t.range }).collect()
}

/// Marks this process as a writer waiting for `targets` until the marks are dropped.
/// Best effort: a lock directory that cannot be used is reported by the locks themselves.
pub fn mark_waiting(targets: &[LockTarget]) -> Option<HeldLocks> {
    acquire(&waiting_targets(targets), LockKind::Shared).ok()
}

/// Whether another process has marked itself waiting for any of `targets`.
pub fn writers_waiting(targets: &[LockTarget]) -> bool {
    let dir = lock_dir();
    waiting_targets(targets).iter().any(|target| {
        let path = dir.join(&target.name);
        // Our own descriptor if we have one: closing another would drop our locks on it.
        let file = match with_registry(|r| r.files.get(&path).cloned()) {
            Some(file) => file,
            None => match OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(&path) {
                Ok(file) => Arc::new(file),
                Err(_) => return false,
            },
        };
        let mut probe = flock_request(target.range, Some(LockKind::Exclusive));
        // SAFETY: F_GETLK fills the flock we own with a conflicting lock, if any; locks of
        // this process never conflict with its own request.
        unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut probe) == 0 && probe.l_type != libc::F_UNLCK as i16 }
    })
}

pub enum AcquireError {
    Conflict { target: LockTarget, conflict: Conflict },
    Unusable(Error),
}

/// Creates the lock directory if missing, open to every user (sticky, as /tmp) so that a
/// reader run by someone else can take its lock too; refuses a symlink or a directory
/// that another ordinary user owns, who could then remove others' lock files.
pub(super) fn prepare_dir(dir: &Path) -> Result<()> {
    let unusable = |why: String| Error::Device(DeviceError::LockDirUnusable { dir: dir.display().to_string(), why });
    let missing = std::fs::symlink_metadata(dir).is_err();
    if missing {
        match std::fs::create_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(unusable(e.to_string())),
        }
        // Made here: open it to every user (a directory that was there is left as it is).
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777));
    }
    let metadata = std::fs::symlink_metadata(dir).map_err(|e| unusable(e.to_string()))?;
    if !metadata.is_dir() {
        return Err(unusable("it is not a directory".into()));
    }
    // SAFETY: geteuid has no failure mode.
    let me = unsafe { libc::geteuid() };
    if metadata.uid() != 0 && metadata.uid() != me {
        return Err(unusable(format!("it is owned by uid {}, neither root nor this user", metadata.uid())));
    }
    Ok(())
}

/// Opens (creating if needed) a lock file without following a symlink planted in the
/// shared directory, and makes a file it created writable by all, whatever the umask.
pub(super) fn open_lock_file(path: &Path) -> io::Result<File> {
    let created = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o666)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    let file = match created {
        Ok(file) => {
            file.set_permissions(std::fs::Permissions::from_mode(0o666))?;
            file
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let open = |write| OpenOptions::new().read(true).write(write).custom_flags(libc::O_NOFOLLOW).open(path);
            // A reader may lock shared through a file it can only read.
            open(true).or_else(|_| open(false))?
        }
        Err(e) => return Err(e),
    };
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("it is not a regular file"));
    }
    Ok(file)
}

/// Locks this process holds: kept here so that two devices of one process are checked
/// against each other, and a lock file stays open while any of them is on it.
struct Held {
    id: HeldId,
    path: PathBuf,
    range: ByteRange,
    kind: LockKind,
}

type HeldId = u64;

#[derive(Default)]
struct Registry {
    next_id: HeldId,
    held: Vec<Held>,
    files: HashMap<PathBuf, Arc<File>>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

fn with_registry<T>(f: impl FnOnce(&mut Registry) -> T) -> T {
    let mut guard = REGISTRY.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    f(guard.get_or_insert_with(Registry::default))
}

fn acquire_one(dir: &Path, target: &LockTarget, kind: LockKind) -> std::result::Result<HeldId, AcquireError> {
    let path = dir.join(&target.name);
    with_registry(|registry| {
        let ours = registry.held.iter().find(|h| {
            h.path == path
                && h.range.overlaps(&target.range)
                && (h.kind == LockKind::Exclusive || kind == LockKind::Exclusive)
        });
        if let Some(h) = ours {
            let conflict = Conflict {
                pid: Some(std::process::id() as i32),
                writing: h.kind == LockKind::Exclusive,
                holder_path: None,
            };
            return Err(AcquireError::Conflict { target: target.clone(), conflict });
        }
        let file = match registry.files.get(&path) {
            Some(file) => file.clone(),
            None => {
                let file = open_lock_file(&path).map_err(|e| {
                    AcquireError::Unusable(Error::io(format!("cannot open the lock file {}", path.display()), e))
                })?;
                let file = Arc::new(file);
                registry.files.insert(path.clone(), file.clone());
                file
            }
        };
        match set_lock(&file, target.range, Some(kind)) {
            Ok(()) => {}
            Err(e) => {
                if !registry.held.iter().any(|h| h.path == path) {
                    registry.files.remove(&path);
                }
                return Err(match e {
                    SetLockError::Conflict(conflict) => AcquireError::Conflict { target: target.clone(), conflict },
                    SetLockError::Io(e) => {
                        AcquireError::Unusable(Error::io(format!("cannot lock {}", path.display()), e))
                    }
                });
            }
        }
        registry.next_id += 1;
        let id = registry.next_id;
        registry.held.push(Held { id, path, range: target.range, kind });
        Ok(id)
    })
}

/// Drops one lock: unlocks the bytes no other lock of this process still covers (only
/// shared locks of this process can overlap), and closes the file after its last lock.
fn release(id: HeldId) {
    with_registry(|registry| {
        let Some(index) = registry.held.iter().position(|h| h.id == id) else {
            return;
        };
        let gone = registry.held.remove(index);
        let others: Vec<ByteRange> = registry.held.iter().filter(|h| h.path == gone.path).map(|h| h.range).collect();
        if others.is_empty() {
            // Closing the last descriptor drops every lock of ours on the file.
            registry.files.remove(&gone.path);
            return;
        }
        if let Some(file) = registry.files.get(&gone.path) {
            for piece in subtract(gone.range, &others) {
                let _ = set_lock(file, piece, None);
            }
        }
    })
}

/// The parts of `range` that no range of `others` covers.
fn subtract(range: ByteRange, others: &[ByteRange]) -> Vec<ByteRange> {
    let mut pieces = vec![range];
    for other in others {
        let mut next = Vec::new();
        for piece in pieces {
            if !piece.overlaps(other) {
                next.push(piece);
                continue;
            }
            if piece.start < other.start {
                next.push(ByteRange { start: piece.start, end: Some(other.start) });
            }
            if let Some(end) = other.end {
                if piece.end.is_none_or(|e| e > end) {
                    next.push(ByteRange { start: end, end: piece.end });
                }
            }
        }
        pieces = next;
    }
    pieces
}

enum SetLockError {
    Conflict(Conflict),
    Io(io::Error),
}

/// F_SETLK on `range` (None unlocks). On a conflict, F_GETLK names the holder.
fn set_lock(file: &File, range: ByteRange, kind: Option<LockKind>) -> std::result::Result<(), SetLockError> {
    let request = flock_request(range, kind);
    for _ in 0..LOCK_TRIES_MAX {
        // SAFETY: fcntl with F_SETLK reads the flock we own.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &request) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if !matches!(err.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) {
            return Err(SetLockError::Io(err));
        }
        let mut probe = request;
        // SAFETY: F_GETLK fills the flock with the conflicting lock's owner.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut probe) } == 0
            && probe.l_type != libc::F_UNLCK as i16
        {
            let writing = probe.l_type == libc::F_WRLCK as i16;
            return Err(SetLockError::Conflict(Conflict { pid: Some(probe.l_pid), writing, holder_path: None }));
        }
        // The holder let go between the two calls: try again.
    }
    Err(SetLockError::Conflict(Conflict { pid: None, writing: true, holder_path: None }))
}

/// The fcntl request for `range`, of `kind` (None unlocks).
fn flock_request(range: ByteRange, kind: Option<LockKind>) -> libc::flock {
    // SAFETY: a zeroed flock is a valid value; every field we rely on is set below.
    let mut request: libc::flock = unsafe { std::mem::zeroed() };
    request.l_type = match kind {
        Some(LockKind::Exclusive) => libc::F_WRLCK,
        Some(LockKind::Shared) => libc::F_RDLCK,
        None => libc::F_UNLCK,
    } as i16;
    request.l_whence = libc::SEEK_SET as i16;
    // Offsets past what off_t holds cannot be locked apart; such a range runs to the end.
    let start = i64::try_from(range.start).unwrap_or(i64::MAX);
    request.l_start = start;
    request.l_len = range.end.map_or(0, |end| i64::try_from(end).map_or(0, |end| (end - start).max(1)));
    request
}

/// The path by which process `pid` holds a device reaching `base_name`'s storage: one of
/// its open regular files or block devices that resolves to that base. None if /proc
/// does not show it (another user's process, or it exited).
pub fn holder_path(pid: i32, base_name: &str) -> Option<String> {
    let dir = lock_dir();
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    for entry in entries.flatten() {
        let Ok(target) = std::fs::read_link(entry.path()) else { continue };
        if target.starts_with(&dir) || !target.is_absolute() {
            continue;
        }
        let Some(extents) = resolve_path(&entry.path(), Path::new(SYSFS_ROOT)) else { continue };
        if extents.iter().any(|e| e.base.lock_name() == base_name) {
            return Some(target.display().to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtract_leaves_what_no_other_range_covers() {
        let r = |start, end| ByteRange { start, end };
        assert_eq!(subtract(r(0, Some(100)), &[r(20, Some(30))]), vec![r(0, Some(20)), r(30, Some(100))]);
        assert_eq!(subtract(r(0, None), &[r(0, Some(10)), r(50, None)]), vec![r(10, Some(50))]);
        assert_eq!(subtract(r(10, Some(20)), &[r(0, None)]), vec![]);
        assert_eq!(subtract(r(10, Some(20)), &[r(20, Some(30))]), vec![r(10, Some(20))]);
    }
}
